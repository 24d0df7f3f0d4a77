"""The bounded parse worker: a file over the memory or step-time limit is skipped, the next one loads.

The files are real and built here; the limits are set low so that an ordinary parser goes over them.
"""

from __future__ import annotations

import hostile_files as hf
import pytest

from assistant import Assistant
from assistant.ingest import limits
from assistant.ingest.loading import load_file
from assistant.ingest.worker import ParseBounds, shutdown
from assistant.schema import Document, Skipped
from assistant.settings import Settings


@pytest.fixture(autouse=True)
def fresh_workers():
    yield
    shutdown()


def _small_html(tmp_path):
    path = tmp_path / "small.html"
    path.write_text("<p>The ferry leaves at <b>nine</b> sharp</p>")
    return path


def test_a_parse_over_the_memory_limit_is_skipped_and_the_next_file_loads(tmp_path):
    bounds = ParseBounds(memory_mb=120)
    big = tmp_path / "big.html"
    big.write_text("<p>" + "<b>x</b> " * 300_000 + "</p>")  # 2.7 MB: a tree of 300,000 elements
    small = _small_html(tmp_path)
    assert load_file(small, bounds=bounds).text == "The ferry leaves at nine sharp"
    skipped = load_file(big, bounds=bounds)
    assert isinstance(skipped, Skipped), len(skipped.text)
    assert "120 MB" in skipped.reason and "ASSISTANT_PARSE_MEMORY_MB" in skipped.reason, skipped.reason
    assert load_file(small, bounds=bounds).text == "The ferry leaves at nine sharp"  # a fresh worker
    big.write_text("<p>" + "<b>x</b> " * 1000 + "</p>")  # the same shape, smaller: within the limit
    assert load_file(big, bounds=bounds).text.count("x") == 1000


def test_a_step_over_the_time_limit_is_skipped_and_the_next_file_loads(tmp_path):
    bounds = ParseBounds(step_seconds=2)
    deep = tmp_path / "deep.html"
    deep.write_text(hf.nested_html(100_000))  # over ten seconds of parsing in one step
    small = _small_html(tmp_path)
    assert load_file(small, bounds=bounds).text == "The ferry leaves at nine sharp"  # the worker is started
    skipped = load_file(deep, bounds=bounds)
    assert isinstance(skipped, Skipped)
    assert "more than 2 s without progress" in skipped.reason, skipped.reason
    assert load_file(small, bounds=bounds).text == "The ferry leaves at nine sharp"


def test_loaders_report_progress_steps(tmp_path):
    """Each page, chapter, mail part and row is a step: the time limit restarts with each."""
    steps = []
    limits.on_step(lambda: steps.append(1))
    try:
        (tmp_path / "forms.pdf").write_bytes(hf.nested_forms_pdf(1, 3))
        (tmp_path / "parts.eml").write_bytes(hf.many_parts_eml(5))
        off = ParseBounds(memory_mb=0)  # in this process, where the hook is
        for name, at_least in (("forms.pdf", 1), ("parts.eml", 5)):
            before = len(steps)
            assert isinstance(load_file(tmp_path / name, bounds=off), Document)
            assert len(steps) - before >= at_least, name
    finally:
        limits.on_step(None)


def test_the_bounds_are_settings_the_indexer_uses(tmp_path, seed_assistant, monkeypatch):
    monkeypatch.setenv("ASSISTANT_PARSE_MEMORY_MB", "120")
    monkeypatch.setenv("ASSISTANT_PARSE_STEP_SECONDS", "30")
    settings = Settings.from_env()
    assert (settings.parse_memory_mb, settings.parse_step_seconds) == (120, 30.0)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "big.html").write_text("<p>" + "<b>x</b> " * 300_000 + "</p>")
    _small_html(docs)
    a = Assistant(seed_assistant.settings.with_(index_dir=tmp_path / "index", parse_memory_mb=120))
    a.embedder = seed_assistant.embedder
    report = a.index([docs])
    assert report.added == 1
    assert [(s.path.rsplit("/", 1)[-1], "120 MB" in s.reason) for s in report.skipped] == [("big.html", True)]
