"""Hybrid retrieval over a small real index: BM25 finds what vectors miss; scores are ranked."""

from __future__ import annotations

import pytest

from assistant.pipeline import Assistant
from assistant.schema import Document

TEXTS = [
    "The lighthouse keeper climbed the spiral stairs every evening to light the lamp.",
    "Glaciers carve U-shaped valleys as they slowly move down the mountains.",
    "Our warehouse stores spare parts under the inventory code QZX-4471 on shelf nine.",
    "Sourdough starter is a culture of wild yeast and lactic acid bacteria.",
    "The violin has four strings tuned in perfect fifths.",
    "Migratory birds use the Earth's magnetic field to navigate.",
]


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
