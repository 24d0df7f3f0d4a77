"""Turns exceptions into one sentence a user can act on (no stack traces, no secrets)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+\S+|api[_-]?key=\S+)", re.IGNORECASE)
_URL = re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s'\"<>]+", re.IGNORECASE)


def redact_url(url: str) -> str:
    """A URL fit to show: no `user:password@`, every query value replaced by `***`.

    Endpoints are named in warnings and errors that every user of a server sees, and people put
    credentials in them (`http://user:pass@host/v1?token=...`).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # a malformed URL: drop anything that looks like credentials
        return re.sub(r"//[^/@\s]*@", "//", url.split("?", 1)[0].split("#", 1)[0])
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    # key=value keeps the key; a bare `?token` is all secret
    query = "&".join(f"{p.split('=', 1)[0]}=***" if "=" in p else "***" for p in parts.query.split("&") if p)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


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
    line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return _SECRET.sub("***", _URL.sub(lambda m: redact_url(m.group(0)), line))
