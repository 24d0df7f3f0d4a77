"""Arranging an answer's sentences: the reason (or the way) first, and nothing from passages far below the best.

"Why might Russia not send S-400s to Iran?" was answered with Iran's demand (no reason), then the
reason ("…but Russia wouldn't want to antagonise Israel"), then a drone sentence from a passage of
relevance 0.07. A why/how question is answered by the sentence that gives the cause or the way, so
that one leads; and a sentence from a passage far less relevant than the best one is about
something else, so it is left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from assistant.schema import Passage

if TYPE_CHECKING:
    from assistant.generation.base import Candidate

__all__ = ["RELEVANCE_FLOOR", "arrange", "gives_reason"]

RELEVANCE_FLOOR = 0.25  # a passage scoring under this share of the best passage's relevance is not quoted

_WHY = re.compile(r"^\W*(?:and\s+|so\s+|but\s+)?why\b|\bfor what reason\b|\bwhat (?:is|was) the reason\b", re.I)
_HOW = re.compile(
    r"^\W*(?:and\s+|so\s+)?how\b(?!\s+(?:many|much|long|old|far|large|big|often|tall|high|deep|fast|wide|heavy|soon))",
    re.I,
)
_CAUSE = re.compile(
    r"\b(?:because|since|due to|owing to|so that|in order to|as a result|result(?:s|ed)? (?:from|in)|reasons?|"
    r"therefore|thus|hence|caused|causes|leads? to|led to|would(?:n't| not)?|wants?|wanted|want to|aims? to|"
    r"to (?:avoid|prevent|protect|ensure|keep|allow|help|reduce|increase)|for fear|out of|concern(?:s|ed)?|"
    r"afraid|risk|so as to|given that|as it|as they|as he|as she)\b",
    re.I,
)
_WAY = re.compile(r"\b(?:by|through|using|uses|used|via|with|means of|method|process|steps?|first|then)\b", re.I)
_NEGATION = re.compile(r"\b(?:not|no|never|nor|cannot)\b|n't\b", re.I)


def gives_reason(question: str, text: str) -> bool:
    """Whether a sentence gives the cause (a why question, keeping its polarity) or the way (a how question)."""
    if _WHY.search(question):
        if _NEGATION.search(question) and not _NEGATION.search(text):
            return False
        return bool(_CAUSE.search(text))
    if _HOW.search(question):
        return bool(_WAY.search(text))
    return False


def arrange(question: str, chosen: Sequence[Candidate], passages: Sequence[Passage]) -> list[Candidate]:
    """The chosen sentences without those of passages far below the best, the reason-giving one first
    for a why/how question (the others keep their order)."""
    chosen = list(chosen)
    if not chosen or not passages:
        return chosen
    best = max(p.score for p in passages)
    kept = [c for c in chosen if passages[c.passage - 1].score >= RELEVANCE_FLOOR * best] or chosen[:1]
    if question and (_WHY.search(question) or _HOW.search(question)) and not gives_reason(question, kept[0].text):
        reason = next((c for c in kept[1:] if gives_reason(question, c.text)), None)
        if reason is not None:
            kept.remove(reason)
            kept.insert(0, reason)
    return kept
