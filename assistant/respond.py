"""The chain's last step: a generator drafts the answer, `finish` turns the draft into the `Answer`.

It is one LangChain runnable with both ways of running: `invoke` asks the generator for the whole
draft, `stream` yields its text as it is written (with `[n]` markers numbered as the finished
answer will number them), then the finished `Answer`. So `Assistant.answer` and
`Assistant.stream` are the same chain, invoked or streamed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig

from assistant.errors import GenerationError
from assistant.generation.base import Generator
from assistant.grounding.citations import MarkerRenumberer
from assistant.schema import Answer, Draft, Passage


class Respond(Runnable[dict, str | Answer]):
    """{"query", "passages", ...} → `Answer` (invoked) or text deltas, then the `Answer` (streamed).

    Args:
        generator: Returns the generator to use, at the time of use (it may start a model).
        finish: Turns a draft into the answer: checks citations and quotes (see `Assistant.finish`).
    """

    def __init__(self, generator: Callable[[], Generator], finish: Callable[[Draft, list[Passage], str], Answer]):
        self.generator = generator
        self.finish = finish

    def invoke(self, input: dict, config: RunnableConfig | None = None, **kwargs: Any) -> Answer:
        return self._call_with_config(self._answer, input, config)

    def transform(
        self, input: Iterator[dict], config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[str | Answer]:
        yield from self._transform_stream_with_config(input, self._stream, config)

    def stream(self, input: dict, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[str | Answer]:
        return self.transform(iter([input]), config, **kwargs)

    def _answer(self, state: dict) -> Answer:
        draft = self.generator().generate(state["query"], state["passages"])
        return self.finish(draft, state["passages"], state.get("question", ""))

    def _stream(self, chunks: Iterator[dict]) -> Iterator[str | Answer]:
        state: dict = {}
        for chunk in chunks:  # the previous steps stream their output as partial dicts
            state.update(chunk)
        generator, passages = self.generator(), state["passages"]
        shown = MarkerRenumberer(len(passages))
        draft = None
        for item in generator.stream(state["query"], passages):
            if isinstance(item, Draft):
                draft = item
            elif text := shown.feed(item):
                yield text
        if text := shown.flush():
            yield text
        if draft is None:
            raise GenerationError(f"The {generator.name} generator ended its answer without a draft.")
        yield self.finish(draft, passages, state.get("question", ""))
