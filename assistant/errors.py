"""Turns exceptions into one sentence a user can act on (no stack traces, no secrets)."""

from __future__ import annotations

import re

_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+\S+|api[_-]?key=\S+)", re.IGNORECASE)


def describe(exc: BaseException) -> str:
    """The message of errors we raise on purpose; a short generic line for the rest."""
    from .generation.llm import GenerationError
    from .indexing import IndexBusyError
    from .pipeline import QuestionError
    from .store import StoreError

    if isinstance(exc, (QuestionError, StoreError, GenerationError, IndexBusyError, ValueError)):
        text = str(exc)
    elif isinstance(exc, OSError):
        text = f"{exc.strerror or exc}" + (f": {exc.filename}" if getattr(exc, "filename", None) else "")
    else:
        text = f"unexpected {type(exc).__name__}: {exc}"
    return _SECRET.sub("***", text.strip().splitlines()[0] if text.strip() else type(exc).__name__)
