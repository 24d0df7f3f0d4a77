"""Hybrid retrieval: the fusion on its own (no model), then a small real index where BM25 finds what
vectors miss and scores are ranked."""

from __future__ import annotations

import pytest

from assistant.pipeline import Assistant
from assistant.retrieval.hybrid import fuse
from assistant.schema import Document

TEXTS = [
    "The lighthouse keeper climbed the spiral stairs every evening to light the lamp.",
    "Glaciers carve U-shaped valleys as they slowly move down the mountains.",
    "Our warehouse stores spare parts under the inventory code QZX-4471 on shelf nine.",
    "Sourdough starter is a culture of wild yeast and lactic acid bacteria.",
    "The violin has four strings tuned in perfect fifths.",
    "Migratory birds use the Earth's magnetic field to navigate.",
]


def test_fuse_weighs_normalised_cosine_against_normalised_bm25():
    dense = {"a": 0.8, "b": 0.6, "c": 0.4}  # normalised over the pool: 1.0, 0.5, 0.0
    keyword = {"c": 12.0, "b": 6.0, "gone": 3.0}  # by the best score: 1.0, 0.5 ("gone" has no chunk)
    assert fuse(dense, keyword, 0.6) == [("a", 0.6), ("b", 0.5), ("c", 0.4)]
    assert [i for i, _ in fuse(dense, keyword, 0.2)] == ["c", "b", "a"]  # mostly BM25
    assert fuse(dense, keyword, 1.0) == [("a", 1.0), ("b", 0.5), ("c", 0.0)]


def test_fuse_without_keyword_hits_is_dense_only_and_ties_go_to_the_cosine():
    assert fuse({"a": 0.5, "b": 0.7}, {}, 0.6) == [("b", 1.0), ("a", 0.0)]
    assert fuse({"a": 0.5, "b": 0.5}, {}, 0.6) == [("a", 1.0), ("b", 1.0)]  # one cosine: all equal, order kept
    tied = fuse({"x": 0.30, "y": 0.40, "z": 0.50}, {"x": 2.0}, 0.5)  # x: 0.5 from BM25, y: 0.25 + 0
    assert tied[0] == ("z", 0.5) and tied[1] == ("x", 0.5) and tied[2][0] == "y"
    assert fuse({}, {"a": 1.0}, 0.6) == []


@pytest.fixture(scope="module")
def assistant(tmp_path_factory) -> Assistant:
    a = Assistant(index_dir=tmp_path_factory.mktemp("index"), progress=False)
    a.indexer.index_documents([Document(source=f"doc{i}", text=t) for i, t in enumerate(TEXTS)])
    return a


def test_keyword_only_match_is_found(assistant):
    passages = assistant.retrieve("QZX-4471", 3)
    assert passages[0].chunk.source == "doc2"
    assert passages[0].keyword > 0


def test_semantic_match_without_shared_words(assistant):
    passages = assistant.retrieve("how do animals find their way when they fly south", 2)
    assert passages[0].chunk.source == "doc5"


def test_scores_sorted_and_bounded(assistant):
    passages = assistant.retrieve("mountains and valleys carved by ice", 6)
    scores = [p.score for p in passages]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert len({p.chunk.id for p in passages}) == len(passages)
