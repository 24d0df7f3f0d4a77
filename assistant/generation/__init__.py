"""Generators turn a question and retrieved passages into a draft answer with `[n]` markers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from assistant.schema import Draft, Passage


class Generator(Protocol):
    """What the pipeline needs from a generator, so the extractive one and LLMs are interchangeable."""

    name: str

    def generate(self, question: str, passages: list[Passage]) -> Draft: ...

    def stream(self, question: str, passages: list[Passage]) -> Iterator[str]:
        """Text deltas; joined, they are the full answer text."""
        ...


DECLINE_TEXT = "I could not find this in the documents."

GENERATORS = ("extractive", "openai", "llamacpp")


def create_generator(settings, *, fallback: Generator) -> Generator:
    """The generator a `Settings.generator` name selects; `fallback` is the extractive one."""
    name = (settings.generator or "extractive").lower()
    if name == "extractive":
        return fallback
    if name == "openai":
        from .llm import OpenAIGenerator

        return OpenAIGenerator(
            url=settings.llm_url,
            model=settings.llm_model,
            api_key=settings.llm_api_key,
            timeout=settings.llm_timeout,
            max_tokens=settings.llm_max_tokens,
        )
    if name == "llamacpp":
        from .llm import GenerationError, LlamaCppGenerator

        if not settings.llm_gguf:
            raise GenerationError("The llamacpp generator needs a model file: --llm-gguf PATH (ASSISTANT_LLM_GGUF).")
        return LlamaCppGenerator(settings.llm_gguf, timeout=settings.llm_timeout, max_tokens=settings.llm_max_tokens)
    raise ValueError(f"Unknown generator {name!r}; choose one of {', '.join(GENERATORS)}.")
