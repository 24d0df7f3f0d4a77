"""The default generator: answers with the documents' own sentences, so it cannot invent.

Every sentence of the retrieved passages is scored by meaning (cosine to the question), by the
share of the question's terms it contains, and by its passage's retrieval score. The best one or
two sentences, deduplicated and in reading order, form the answer, each cited. When even the
best sentence is weak evidence, it declines instead.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..chunking import sentences
from ..embedding import Embedder
from ..keyword import tokenize
from ..schema import Draft, Passage
from . import DECLINE_TEXT

# Weights and thresholds: see bench/calibrate_abstain.py, which derives them on SQuAD v2 dev.
W_COSINE, W_OVERLAP, W_RANK = 0.55, 0.30, 0.15
MIN_SENTENCE_SCORE = 0.36
MIN_PASSAGE_COSINE = 0.20
SECOND_SENTENCE_RATIO = 0.90


@dataclass(frozen=True)
class Candidate:
    passage: int  # 1-based position in the passage list
    start: int
    end: int
    text: str
    cosine: float
    overlap: float
    score: float


class ExtractiveGenerator:
    """Composes a short cited answer from the best sentences of the passages.

    Args:
        embedder: Encodes question and sentences (the same model as retrieval).
        max_sentences: Sentences in an answer (1 to 3).
        min_score: Below this best-sentence score the generator declines.
    """

    name = "extractive"

    def __init__(self, embedder: Embedder, max_sentences: int = 2, min_score: float = MIN_SENTENCE_SCORE):
        self.embedder = embedder
        self.max_sentences = max(1, min(3, max_sentences))
        self.min_score = min_score
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def generate(self, question: str, passages: list[Passage]) -> Draft:
        ranked = self.rank(question, passages)
        if not ranked or not self._confident(ranked[0], passages):
            return Draft(DECLINE_TEXT, abstained=True)
        chosen = [ranked[0]]
        for cand in ranked[1:]:
            if len(chosen) >= self.max_sentences or cand.score < SECOND_SENTENCE_RATIO * ranked[0].score:
                break
            if not any(_similar(cand.text, c.text) for c in chosen):
                chosen.append(cand)
        first = chosen[0].passage  # same passage: reading order; otherwise best first
        chosen.sort(key=lambda c: (0, c.start) if c.passage == first else (1, 0))
        parts, quotes = [], {}
        for c in chosen:
            parts.append(f"{_clean(c.text)} [{c.passage}]")
            quotes[c.passage] = _join_quote(passages[c.passage - 1].chunk.text, quotes.get(c.passage), c)
        return Draft(" ".join(parts), abstained=False, quotes=quotes)

    def stream(self, question: str, passages: list[Passage]) -> Iterator[str]:
        text = self.generate(question, passages).text
        for piece in re.findall(r"\S+\s*", text):
            yield piece

    def rank(self, question: str, passages: list[Passage]) -> list[Candidate]:
        """All sentences of the passages, best first, duplicates (from overlapping chunks) removed."""
        spans = []
        seen: set[str] = set()
        for n, p in enumerate(passages, start=1):
            for s in sentences(p.chunk.text):
                text = p.chunk.text[s.start : s.end]
                key = " ".join(text.lower().split())
                if key in seen or len(key) < 12:
                    continue
                seen.add(key)
                spans.append((n, s.start, s.end, text))
        if not spans:
            return []
        q_vec = self._vectors([question])[0]
        cos = self._vectors([t for *_, t in spans]) @ q_vec
        q_terms = set(tokenize(question))
        top_score = max(p.score for p in passages) or 1.0
        out = []
        for (n, start, end, text), c in zip(spans, cos, strict=True):
            overlap = len(q_terms & set(tokenize(text))) / len(q_terms) if q_terms else 0.0
            rank = passages[n - 1].score / top_score
            score = W_COSINE * float(c) + W_OVERLAP * overlap + W_RANK * rank
            out.append(Candidate(n, start, end, text, float(c), overlap, score))
        out.sort(key=lambda c: -c.score)
        return out

    def _confident(self, best: Candidate, passages: list[Passage]) -> bool:
        return best.score >= self.min_score and max(p.dense for p in passages) >= MIN_PASSAGE_COSINE

    def _vectors(self, texts: list[str]) -> np.ndarray:
        """Sentence vectors, cached: warm questions over the same passages cost no model call."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            for t, v in zip(todo, self.embedder.encode(todo), strict=True):
                self._cache[t] = v
            while len(self._cache) > 50_000:
                self._cache.popitem(last=False)
        return np.stack([self._cache[t] for t in texts])


def _similar(a: str, b: str) -> bool:
    ta, tb = set(tokenize(a)), set(tokenize(b))
    return bool(ta and tb) and len(ta & tb) / len(ta | tb) > 0.6


def _clean(text: str) -> str:
    return " ".join(text.split())


def _join_quote(passage: str, previous: str | None, c: Candidate) -> str:
    """The quoted span of a passage: one sentence, or the stretch covering two from the same passage."""
    if previous is None:
        return c.text
    start = min(passage.index(previous), c.start)
    end = max(passage.index(previous) + len(previous), c.end)
    return passage[start:end]
