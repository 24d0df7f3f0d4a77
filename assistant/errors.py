"""One family of errors, and the one rule for what of an error a user gets to see.

Every error the assistant raises on purpose is an `AssistantError` whose message is one sentence a
user can act on, with no secret in it. `describe()` shows exactly those messages; anything else
is a bug or a third party's problem, shown as a short generic line (its text may hold internals).
`except Exception` is kept to the edges: the CLI and web handlers (which call `describe`), the
per-file guard of loading, and the boundaries to Chroma, the LLM client and llama.cpp, which
translate whatever their libraries raise into the errors below.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit


class AssistantError(Exception):
    """An error raised on purpose; its message is safe and useful to show a user."""


class InputError(AssistantError, ValueError):
    """Input that cannot be used as given (a setting, a request, a folder); the message says why."""


class QuestionError(InputError):
    """A question that cannot be asked as given; the message says why."""


class SourceError(InputError):
    """A document named to limit a question to matches no indexed document, or several."""


class UploadError(InputError):
    """An uploaded file that is refused before it is stored; the message names the file and why."""


class EvaluationError(InputError):
    """A folder to evaluate that is neither layout; the message says what is expected."""


class DocumentError(AssistantError, ValueError):
    """A document that cannot be read (a broken or protected file); the message is the reason shown."""


class StoreError(AssistantError, RuntimeError):
    """The index cannot be read or written (a Chroma server down, a broken folder); names the store."""


class IndexMismatchError(StoreError):
    """The index was built by another embedding model or chunker than this assistant uses."""


class IndexBusyError(StoreError):
    """Another indexing run holds the index and the caller asked not to wait."""


class ReaderError(AssistantError, RuntimeError):
    """The shipped reader model cannot be loaded; the message names the missing or corrupt file."""


class EmbeddingError(AssistantError, RuntimeError):
    """The embedding model cannot be built or loaded (missing weights, an unwritable cache); says which."""


class GenerationError(AssistantError, RuntimeError):
    """The language model could not produce an answer; the message names the endpoint, never the key."""


class UnsupportedAnswerError(GenerationError):
    """The language model answered, but the documents do not support most of what it said."""


# API keys, bearer tokens and key parameters, wherever a message quotes them.
_SECRET = re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-*]{4,}|Bearer\s+\S+|api[_-]?key=\S+", re.IGNORECASE)
_URL = re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s'\"<>]+", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with the given secrets, URL credentials and query values, and anything shaped like a
    key or token replaced by `***`: the one rule for every message a user may see."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _SECRET.sub("***", _URL.sub(lambda m: redact_url(m.group(0)), text))


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


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's first line, whitespace collapsed (its type's name when it says nothing), cut at `limit`.

    How any error is quoted inside another message (a library's reason in a `StoreError`, a skipped file's
    reason); what a user may see of it still goes through `describe` or `redact`.
    """
    text = str(exc).strip()
    text = " ".join(text.splitlines()[0].split()) if text else type(exc).__name__
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def describe(exc: BaseException) -> str:
    """One line for the user: our own errors' messages, the OS's reason, a generic line for the rest."""
    if isinstance(exc, AssistantError):
        text = str(exc)
    elif isinstance(exc, OSError):
        text = f"{exc.strerror or exc}" + (f": {exc.filename}" if getattr(exc, "filename", None) else "")
    else:
        text = f"An unexpected error occurred ({type(exc).__name__})."
    return redact(text.strip().splitlines()[0] if text.strip() else type(exc).__name__)
