"""Fake chat models and small passages for unit tests (no model, no server)."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import Field


class RecordingFake(GenericFakeChatModel):
    """A fake chat model that remembers the messages of each call."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


class RaisingFake(GenericFakeChatModel):
    """A fake chat model whose every call fails like the OpenAI client does when the server is down."""

    error: Any = None

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        raise self.error


def fake(*replies: str) -> RecordingFake:
    return RecordingFake(messages=iter([AIMessage(content=r) for r in replies]))


# Three short passages on unrelated topics, for checks of which passage supports a sentence.
TEXTS = [
    "The Rhine flows 1,230 kilometres from the Swiss Alps to the North Sea. Basel is the first major city "
    "on its course, and Rotterdam sits near its mouth.",
    "Ashgabat is the capital of Turkmenistan. In 2024 it hosted a forum for the 300th anniversary of the "
    "birth of the poet Magtymguly Pyragy.",
    "Stephen Hall teaches Russian politics at the University of Bath. He said Russia would not want to "
    "antagonise Israel by sending air defence systems to Iran.",
]
