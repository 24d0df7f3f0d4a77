"""An LLM's draft, checked against the passages it was given before it becomes the answer.

A model may cite nothing, cite the wrong passage, or say what no passage says. `GroundedGenerator`
wraps an LLM so that its draft goes through `Grounder.ground`: markers are kept, corrected or
added, sentences no passage supports lose their markers and are recorded on the draft
(`Draft.unsupported`), and an answer that is mostly unsupported raises `UnsupportedAnswerError`,
so that the `FallbackGenerator` around it lets the extractive answer stand in (one stand-in
mechanism for every way an LLM fails). The extractive generator is never wrapped: its sentences
are quotes, and it must not pay for the check.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from assistant.errors import UnsupportedAnswerError
from assistant.generation.base import Generator
from assistant.schema import Draft, Passage

if TYPE_CHECKING:
    from assistant.grounding.grounder import Grounder


class GroundedGenerator(Generator):
    """`primary` writes the answer; `grounder` checks each of its sentences against the passages.

    Text streams as `primary` writes it; the checked draft (markers corrected, unsupported sentences
    listed) is the stream's last item, so citations and support marks arrive with the final answer.

    Args:
        primary: The generator whose drafts are checked (an LLM).
        grounder: The check (`assistant.grounding.grounder.Grounder`, with the retrieval embedding model).
    """

    def __init__(self, primary: Generator, grounder: Grounder):
        self.primary = primary
        self.grounder = grounder
        self.name = primary.name

    def __repr__(self) -> str:
        return f"GroundedGenerator({self.primary!r})"

    def generate(self, question: str, passages: list[Passage]) -> Draft:
        ready = self._prepare(passages)
        draft = self.primary.generate(question, passages)
        ready.join()
        return self.check(question, draft, passages)

    def stream(self, question: str, passages: list[Passage]) -> Iterator[str | Draft]:
        ready = self._prepare(passages)
        for item in self.primary.stream(question, passages):
            if isinstance(item, Draft):
                ready.join()
                item = self.check(question, item, passages)
            yield item

    def _prepare(self, passages: list[Passage]) -> threading.Thread:
        """Read and embed the passages' sentences while the LLM writes, so the check after it is quick."""
        thread = threading.Thread(target=self.grounder.prepare, args=(passages,), name="grounding-prepare", daemon=True)
        thread.start()
        return thread

    def warm_up(self) -> None:
        self.primary.warm_up()

    def condense(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        return self.primary.condense(question, history)

    def check(self, question: str, draft: Draft, passages: list[Passage]) -> Draft:
        """The draft with checked markers and its unsupported sentences; raises when most is unsupported.

        A draft that declines (the model says the documents do not answer) has nothing to check.

        Raises:
            UnsupportedAnswerError: more than the grounder's share of the claims is unsupported, or
                the answer makes no claim and does not decline.
        """
        if draft.abstained or not passages:
            return draft
        from assistant.grounding.grounder import UNSUPPORTED_WARNING

        grounding = self.grounder.ground(draft.text, passages, question)
        if self.grounder.mostly_unsupported(grounding):
            raise UnsupportedAnswerError(UNSUPPORTED_WARNING)
        return replace(
            draft,
            text=grounding.text,
            abstained=grounding.declines,
            quotes={**grounding.quotes, **draft.quotes},
            unsupported=grounding.unsupported,
        )
