"""Checks a draft's `[n]` markers against the passages and turns them into citations.

Markers that point at no passage are dropped; the rest are renumbered in order of first use so
that `Answer.citations` lists exactly the passages the text cites. Each citation quotes the
sentence(s) of its passage that the answer used: the generator's own quote when it knows it,
otherwise the passage sentence that shares most words with the answer sentence citing it.
"""

from __future__ import annotations

import re

from .chunking import sentences
from .keyword import tokenize
from .schema import Answer, Citation, Draft, Passage

MARKER = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def build_answer(draft: Draft, passages: list[Passage], *, generator: str, warning: str | None = None) -> Answer:
    """Validate and renumber markers, attach citations with exact quotes."""
    if draft.abstained:
        return Answer(MARKER.sub("", draft.text).strip(), True, [], generator=generator, warning=warning)
    order: dict[int, int] = {}  # passage position -> citation number
    context: dict[int, str] = {}  # passage position -> answer sentence citing it first

    def renumber(m: re.Match) -> str:
        numbers = []
        for raw in re.split(r"[,;]", m.group(1)):
            n = int(raw)
            if 1 <= n <= len(passages):
                order.setdefault(n, len(order) + 1)
                context.setdefault(n, _sentence_before(draft.text, m.start()))
                if order[n] not in numbers:
                    numbers.append(order[n])
        return "".join(f" [{k}]" for k in numbers)

    text = MARKER.sub(renumber, draft.text).strip()
    citations = []
    for n, number in order.items():
        chunk = passages[n - 1].chunk
        quote = draft.quotes.get(n) or best_sentence(chunk.text, context[n])
        citations.append(
            Citation(
                n=number,
                source=chunk.source,
                text=chunk.text,
                quote=quote,
                start=chunk.start,
                end=chunk.end,
                page=chunk.page,
                score=passages[n - 1].score,
            )
        )
    return Answer(text, False, citations, generator=generator, warning=warning)


def best_sentence(passage: str, claim: str) -> str:
    """The passage sentence sharing most (stemmed) words with the claim; the first one if none do."""
    spans = sentences(passage) or []
    if not spans:
        return passage
    terms = set(tokenize(claim))
    best = max(spans, key=lambda s: len(terms & set(tokenize(passage[s.start : s.end]))))
    return passage[best.start : best.end]


def _sentence_before(text: str, pos: int) -> str:
    head = MARKER.sub("", text[:pos])
    return re.split(r"(?<=[.!?])\s+", head.strip())[-1] if head.strip() else text
