"""The contract between the pipeline and a generator, and what every generator shares.

Kept apart from the package's `__init__` (which builds generators and wraps them with grounding)
so that generators and the grounding wrapper import the contract without importing each other.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from assistant.schema import Draft, Passage

DECLINE_TEXT = "I could not find this in the documents."

_FOLLOW_UP = re.compile(  # "and" only opening the question ("And his job?"): "Putin and Pezeshkian" is no follow-up
    r"\b(he|him|his|she|her|hers|they|them|their|it|its|this|that|these|those|there|then|"
    r"the same|former|latter|which one|what about|how about)\b|^\s*and\b",
    re.IGNORECASE,
)
_WORDS = re.compile(r"\S+\s*")


class Generator(Protocol):
    """What the pipeline needs from a generator, so the extractive one, LLMs and readers are interchangeable.

    `name` is what `Answer.generator` reports. A `Draft`'s `[n]` markers refer to the 1-based
    position of a passage in the list given; the pipeline checks and renumbers them afterwards.
    """

    name: str

    def generate(self, question: str, passages: list[Passage]) -> Draft:
        """The whole answer at once."""
        ...

    def stream(self, question: str, passages: list[Passage]) -> Iterator[str | Draft]:
        """Text deltas as they are written (joined, they are the draft's text), then the `Draft` itself.

        The default writes the draft first and yields it word by word, for generators that are
        fast enough not to need more.
        """
        draft = self.generate(question, passages)
        yield from _WORDS.findall(draft.text)
        yield draft

    def condense(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        """A standalone query for a follow-up, from (user, assistant) turns; by default `standalone_query`."""
        return standalone_query(question, history)

    def warm_up(self) -> None:
        """Load heavy resources now, before the first answer needs them (default: none).

        Raises:
            AssistantError: what could not be loaded, in one line (the first answer would fail the same way).
        """


def standalone_query(question: str, history: Sequence[tuple[str, str]]) -> str:
    """The follow-up heuristic: a question that points back ("Who is he?") or is very short carries
    the previous question along, so retrieval sees what it refers to."""
    if not history:
        return question
    last = history[-1][0]
    if _FOLLOW_UP.search(question) or len(question.split()) <= 4:
        return f"{last} {question}"
    return question


@dataclass(frozen=True)
class Candidate:
    """A sentence of a passage that may go into an answer, with the scores that chose it."""

    passage: int  # 1-based position in the passage list
    index: int  # sentence position inside its passage
    start: int
    end: int
    text: str
    cosine: float
    overlap: float
    score: float
