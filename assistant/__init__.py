"""Question answering over your documents, citing the exact passages it used.

    >>> from assistant import answer
    >>> print(answer("Why might Russia not send S-400s?"))

Importing the package loads no model and no web framework; the first question pays for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["Answer", "Assistant", "Citation", "Settings", "answer"]

if TYPE_CHECKING:
    from assistant.pipeline import Assistant, answer
    from assistant.schema import Answer, Citation
    from assistant.settings import Settings


def __getattr__(name: str):
    if name in ("Assistant", "answer"):
        from assistant import pipeline

        return getattr(pipeline, name)
    if name in ("Answer", "Citation"):
        from assistant import schema

        return getattr(schema, name)
    if name == "Settings":
        from assistant.settings import Settings

        return Settings
    raise AttributeError(f"module 'assistant' has no attribute {name!r}")
