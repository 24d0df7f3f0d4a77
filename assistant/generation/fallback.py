"""A generator that can fail (an LLM), made dependable by one that cannot (the extractive one).

Every way an LLM fails reaches here as a `GenerationError` (its client's own exceptions are
translated where they are raised; an answer the documents do not support is an
`UnsupportedAnswerError`, raised by `GroundedGenerator`); the user then gets the extractive answer
with a warning instead of an error. Where there is nothing to read (no passages) the LLM is not asked at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

from assistant.errors import GenerationError, UnsupportedAnswerError
from assistant.generation.base import Generator
from assistant.schema import Draft, Passage


class FallbackGenerator(Generator):
    """`primary` answers; when it fails, `fallback` does, and the draft says so.

    A fallback draft names the fallback as its generator and carries a warning that quotes the
    failure. A follow-up is condensed by `primary` when it can; if it fails or only echoes the
    question (small models often do), `fallback`'s condensing is used.

    Args:
        primary: The generator to use (an LLM).
        fallback: The generator that stands in (the offline one: the reader, or the extractive one).
    """

    def __init__(self, primary: Generator, fallback: Generator):
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name

    def __repr__(self) -> str:
        return f"FallbackGenerator({self.primary!r}, fallback={self.fallback.name!r})"

    def generate(self, question: str, passages: list[Passage]) -> Draft:
        if not passages:
            return self._stand_in(self.fallback.generate(question, passages))
        try:
            return self.primary.generate(question, passages)
        except GenerationError as exc:
            return self._stand_in(self.fallback.generate(question, passages), exc)

    def stream(self, question: str, passages: list[Passage]) -> Iterator[str | Draft]:
        problem = None
        if passages:
            shown = False
            try:
                for item in self.primary.stream(question, passages):
                    shown = shown or isinstance(item, str)
                    yield item
                return
            except GenerationError as exc:
                problem = exc
            if shown:
                yield "\n\n"  # the fallback's answer starts apart from what the LLM had written
        for item in self.fallback.stream(question, passages):
            yield item if isinstance(item, str) else self._stand_in(item, problem)

    def warm_up(self) -> None:
        """The fallback first (it must work whatever the primary does), then the primary."""
        self.fallback.warm_up()
        self.primary.warm_up()

    def condense(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        if not history:
            return question
        try:
            rewritten = (self.primary.condense(question, history) or "").strip()
        except GenerationError:  # the LLM is down: the heuristic still resolves most follow-ups
            rewritten = ""
        if rewritten and rewritten.casefold() != question.strip().casefold():
            return rewritten
        return self.fallback.condense(question, history)

    def _stand_in(self, draft: Draft, problem: GenerationError | None = None) -> Draft:
        warning = None
        if isinstance(problem, UnsupportedAnswerError):  # it answered, but not from the documents
            warning = f"This is the {self.fallback.name} answer instead: {problem}."
        elif problem is not None:
            warning = f"The language model failed ({problem}); this is the {self.fallback.name} answer instead."
        return replace(draft, generator=self.fallback.name, warning=warning)
