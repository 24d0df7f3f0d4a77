"""Fake chat models for unit tests of the chain wiring (no model, no server)."""

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
