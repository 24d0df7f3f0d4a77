"""Generators turn a question and retrieved passages into a draft answer with `[n]` markers.

The `Generator` protocol (`base.py`) is the whole contract between the pipeline and a generator: write a
`Draft` (`generate`), write it while showing the text (`stream`, which ends with the `Draft`), and
turn a follow-up into a standalone query (`condense`). Subclassing `Generator` gives the two
defaults: streaming the finished draft word by word, and the follow-up heuristic. The extractive
generator, the LLMs, and whatever comes next (a trained span reader) are interchangeable behind it;
`FallbackGenerator` wraps one that can fail (an LLM) so that the extractive answer stands in, and
`GroundedGenerator` checks an LLM's draft against the passages (see `with_fallback`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from assistant.errors import InputError
from assistant.generation.base import DECLINE_TEXT, Generator, standalone_query
from assistant.settings import GENERATORS

if TYPE_CHECKING:
    from assistant.grounding.grounder import Grounder
    from assistant.settings import Settings

__all__ = ["DECLINE_TEXT", "GENERATORS", "Generator", "create_generator", "standalone_query", "with_fallback"]


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
