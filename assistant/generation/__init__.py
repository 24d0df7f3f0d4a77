"""Generators turn a question and retrieved passages into a draft answer with `[n]` markers.

The `Generator` protocol is the whole contract between the pipeline and a generator: write a
`Draft` (`generate`), write it while showing the text (`stream`, which ends with the `Draft`), and
turn a follow-up into a standalone query (`condense`). Subclassing `Generator` gives the two
defaults: streaming the finished draft word by word, and the follow-up heuristic. The extractive
generator, the LLMs, and whatever comes next (a trained span reader) are interchangeable behind it;
`FallbackGenerator` wraps one that can fail (an LLM) so that the extractive answer stands in, and
`GroundedGenerator` checks an LLM's draft against the passages (see `with_fallback`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from assistant.errors import InputError
from assistant.schema import Draft, Passage
from assistant.settings import GENERATORS

if TYPE_CHECKING:
    from assistant.grounding.grounder import Grounder
    from assistant.settings import Settings

__all__ = ["DECLINE_TEXT", "GENERATORS", "Generator", "create_generator", "standalone_query", "with_fallback"]

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


def with_fallback(generator: Generator, fallback: Generator, grounder: Grounder | None = None) -> Generator:
    """`generator`, wrapped so that `fallback` answers when it fails (unless it is the fallback already).

    Args:
        generator: The generator to make dependable (an LLM).
        fallback: The one that stands in (the extractive generator); it is never checked.
        grounder: When given, `generator`'s drafts are checked against the passages first
            (`GroundedGenerator`), and an answer mostly unsupported counts as a failure.
    """
    from assistant.generation.fallback import FallbackGenerator

    if generator is fallback or isinstance(generator, FallbackGenerator):
        return generator
    if grounder is not None:
        from assistant.grounding.grounded import GroundedGenerator

        generator = GroundedGenerator(generator, grounder)
    return FallbackGenerator(generator, fallback)


def create_generator(settings: Settings, *, fallback: Generator, grounder: Grounder | None = None) -> Generator:
    """The generator a `Settings.generator` name selects; `fallback` is the offline one (the reader,
    or the extractive generator when that is the one asked for), which is returned as is for
    `reader` and `extractive` and stands in for an LLM that fails; `grounder`, when given, checks an
    LLM's answers (see `with_fallback`)."""
    name = (settings.generator or "reader").lower()
    if name in ("reader", "extractive"):
        return fallback
    if name == "openai":
        from assistant.generation.llm import OpenAIGenerator

        llm = OpenAIGenerator(
            url=settings.llm_url,
            model=settings.llm_model,
            api_key=settings.llm_api_key,
            timeout=settings.llm_timeout,
            max_tokens=settings.llm_max_tokens,
        )
        return with_fallback(llm, fallback, grounder)
    if name == "llamacpp":
        from assistant.generation.llm import GenerationError, LlamaCppGenerator

        if not settings.llm_gguf:
            raise GenerationError("The llamacpp generator needs a model file: --llm-gguf PATH (ASSISTANT_LLM_GGUF).")
        local = LlamaCppGenerator(settings.llm_gguf, timeout=settings.llm_timeout, max_tokens=settings.llm_max_tokens)
        return with_fallback(local, fallback, grounder)
    raise InputError(f"Unknown generator {name!r}; choose one of {', '.join(GENERATORS)}.")
