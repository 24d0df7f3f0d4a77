"""One error family: what a user is shown of an error, and that no secret is ever in it."""

from __future__ import annotations

import pytest

from assistant.errors import (
    AssistantError,
    EvaluationError,
    GenerationError,
    IndexBusyError,
    IndexMismatchError,
    InputError,
    QuestionError,
    StoreError,
    UploadError,
    describe,
    redact,
)
from assistant.settings import Settings

KEY = "sk-live-0123456789abcdef"


@pytest.mark.parametrize(
    "error",
    [
        QuestionError,
        UploadError,
        EvaluationError,
        InputError,
        StoreError,
        IndexMismatchError,
        IndexBusyError,
        GenerationError,
    ],
)
def test_our_errors_are_shown_as_written(error):
    assert issubclass(error, AssistantError)
    assert describe(error("The question is too long.\nsecond line")) == "The question is too long."


def test_other_errors_are_not_shown_as_if_they_were_ours():
    assert describe(ValueError("invalid literal for int() with base 10: 'x'")) == (
        "An unexpected error occurred (ValueError)."
    )
    assert describe(KeyError("embeddings")) == "An unexpected error occurred (KeyError)."
    assert describe(FileNotFoundError(2, "No such file or directory", "/tmp/x")) == "No such file or directory: /tmp/x"


def test_secrets_are_redacted_everywhere():
    assert KEY not in describe(GenerationError(f"refused key {KEY}"))
    assert describe(StoreError("Authorization: Bearer abc.def failed")) == "Authorization: *** failed"
    assert redact("key=hunter2-long and api_key=zzz", ["hunter2-long"]) == "key=*** and ***"
    assert redact("a desk-top and a task-force") == "a desk-top and a task-force"  # not keys


def test_settings_can_clear_a_field_and_refuse_bad_numbers(monkeypatch):
    s = Settings(chroma_url="http://127.0.0.1:8000", k=4)
    assert s.with_(k=None, chroma_url=None) == s  # None means "not given"
    assert s.without("chroma_url").chroma_url is None and s.without("chroma_url").k == 4
    with pytest.raises(InputError, match="k"):
        s.without("k")
    monkeypatch.setenv("ASSISTANT_K", "four")
    with pytest.raises(InputError, match="ASSISTANT_K must be a number"):
        Settings.from_env()
