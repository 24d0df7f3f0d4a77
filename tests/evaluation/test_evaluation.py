"""`assistant eval` on tiny generated folders: both layouts, real model and real Chroma."""

from __future__ import annotations

import json

import pytest

from assistant.evaluation.squad import evaluate, ndcg_at, recall_at, sample
from assistant.settings import Settings

DOCS = {
    "d1": ("Volcanoes", "Basalt lava from shield volcanoes flows far because it is runny and hot."),
    "d2": ("Bees", "Honey bees communicate the direction of flowers with a waggle dance."),
    "d3": ("Tides", "The gravitational pull of the Moon raises the ocean tides twice a day."),
    "d4": ("Coffee", "Coffee beans are roasted seeds of the Coffea plant, grown in the tropics."),
}
QUERIES = {"q1": "how do bees tell others where flowers are", "q2": "what causes ocean tides", "q3": "unlabelled"}


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    # index_dir is the user's index: evaluation must never write into it
    return Settings(index_dir=tmp_path_factory.mktemp("user-index"), progress=False)


def test_beir_folder(tmp_path, settings):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, (t, x) in DOCS.items())
    )
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps({"_id": i, "text": t}) for i, t in QUERIES.items()))
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td3\t1\n")
    figures = evaluate(tmp_path, settings, limit=None, k=None)
    assert figures["queries"] == 2  # q3 has no relevance labels
    assert figures["ndcg@10"] == pytest.approx(1.0)
    assert figures["recall@100"] == pytest.approx(1.0) and figures["mrr@10"] == pytest.approx(1.0)
    assert not any(settings.index_dir.iterdir())


def test_qa_folder(tmp_path, settings):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "nature.txt").write_text(
        "Nature notes\n\n" + "\n\n".join(f"{t}. {x}" for t, x in DOCS.values())
    )
    questions = [
        {
            "id": "a",
            "question": "What do honey bees use to communicate the direction of flowers?",
            "answers": ["waggle dance"],
            "is_impossible": False,
        },
        {
            "id": "b",
            "question": "What raises the ocean tides twice a day?",
            "answers": ["Moon"],
            "is_impossible": False,
        },
        {"id": "c", "question": "How do I bake sourdough bread?", "answers": [], "is_impossible": True},
    ]
    (tmp_path / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in questions))
    figures = evaluate(tmp_path, settings, limit=None, k=None)
    assert figures["questions"] == 3
    assert figures["answer_recall"] == 1.0 and figures["citation_recall"] == 1.0
    assert figures["context_recall@4"] == 1.0
    assert figures["abstain_recall"] == 1.0 and figures["abstain_precision"] == 1.0
    assert figures["answerable_abstain_rate"] == 0.0
    assert figures["p95_ms"] >= figures["p50_ms"] > 0
    assert evaluate(tmp_path, settings, limit=2, k=None)["questions"] == 2


def test_metrics_and_sampling():
    assert ndcg_at(["x", "a"], {"a": 1}, 10) == pytest.approx(1 / 1.585, rel=1e-3)
    assert recall_at(["a", "b"], {"a": 1, "c": 1}, 10) == 0.5
    ids = [str(i) for i in range(100)]
    assert sample(ids, 10) == sample(ids, 10) and len(sample(ids, 10)) == 10


def test_unknown_layout(tmp_path, settings):
    with pytest.raises(ValueError, match="neither"):
        evaluate(tmp_path, settings, limit=None, k=None)
