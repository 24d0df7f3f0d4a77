"""The one decline decision (assistant/generation/decline.py): its thresholds travel with the reader
model, and one detector reads an LLM's "the documents do not say" for the generator and the check alike."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import pytest

from assistant.errors import ReaderError
from assistant.generation import decline
from assistant.generation.decline import Thresholds, decide, decide_on_evidence, declines_unread, says_not_found
from assistant.generation.prompts import is_abstention
from assistant.grounding.claims import ABSTENTION, CLAIM, sentence_kind
from assistant.pipeline import Assistant
from assistant.reading.reader import DEFAULT_MODEL_DIR


def test_the_shipped_model_carries_the_thresholds_the_pipeline_uses():
    saved = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())["thresholds"]
    loaded = Thresholds.load(DEFAULT_MODEL_DIR)
    assert asdict(loaded) == {k: saved[k] for k in asdict(loaded)}


def test_a_retrained_model_brings_its_own_thresholds(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model, ignore=shutil.ignore_patterns("*.onnx"))
    Thresholds(short_at=0.7, decline_at=0.6).save(model)
    config = json.loads((model / "config.json").read_text())
    assert config["calibration"] == json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())["calibration"]
    a = Assistant(index_dir=tmp_path / "index", reader_dir=model)
    assert a.reader.thresholds.short_at == 0.7
    assert a.extractive.thresholds.decline_at == 0.6  # both generators decide by the same lines


def test_a_model_without_thresholds_is_refused_with_the_file_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"calibration": {}}))
    with pytest.raises(ReaderError, match="thresholds"):
        Thresholds.load(tmp_path)
    with pytest.raises(ReaderError, match="missing"):
        Thresholds.load(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ReaderError, match="corrupt"):
        Thresholds.load(tmp_path)


def test_the_evidence_alone_declines_exactly_where_decide_would_whatever_the_reader_says():
    at = Thresholds()
    for no_answer in (0.0, 0.3, 0.74, 0.75, 0.9, 1.0):
        for named in (False, True):
            unread = declines_unread(no_answer, named, at)
            outcomes = {decide(no_answer, p, named=named, at=at).action for p in (0.0, 0.2, 0.5, 0.99)}
            assert not unread or outcomes == {"decline"}
        assert (decide_on_evidence(no_answer, at).action == "decline") == (no_answer >= at.decline_at)


def test_the_evidence_models_rules_frame_it():
    evidence = {f: 0.5 for f in decline.FEATURES} | {"terms": 6.0, "pair_coverage": 0.5}
    assert 0.0 < decline.no_answer_probability(evidence) < 1.0
    assert decline.no_answer_probability({}) == 1.0
    assert decline.no_answer_probability(evidence | {"passage_coverage": 0.1}) == 1.0  # the passages barely say
    assert decline.no_answer_probability(evidence | {"passage_cosine": 0.1}) == 1.0  # off-topic
    assert decline.no_answer_probability(evidence | {"terms": 2.0, "pair_coverage": 1.0}) == 0.0  # plainly there


@pytest.mark.parametrize(
    ("text", "cited", "says"),
    [
        ("I could not find this in the documents.", False, True),
        ("I could not find this in the documents.", True, True),  # the fixed wording, whatever it cites
        ("The answer is not in the documents.", False, True),
        ("The context does not specify the year.", False, True),
        ("There is no information about Peru.", False, True),
        ("The documents do not give the date, but it was in Ashgabat.", True, False),
        ("Putin met Pezeshkian in Ashgabat.", False, False),
    ],
)
def test_one_detector_for_the_llms_reply_and_its_sentences(text, cited, says):
    assert says_not_found(text, cited=cited) is says
    assert (sentence_kind(text, cited) == ABSTENTION) is says
    if says:
        assert sentence_kind(text, cited) != CLAIM
    assert is_abstention(text + (" [1]" if cited else "")) is says
