"""The server's front door: one ASGI layer that judges every request from its headers before any body is read.

Hostile clients were able to make the server read 150 MB before it looked at a password, drive
the page from another site with the user's cookie, guess passwords as fast as the server
answered, and forge lines in the log. `RequestGuard` stands in front of the API and the page and,
in this order: answers CORS itself (only the server's own origin and `ASSISTANT_ALLOWED_ORIGINS`
may read responses or change anything), slows password guessing (`LoginThrottle`), asks for a
session before a page request may send a body, and caps every body by route while it streams
(`BodyLimits`). The body helpers (`read_body`, `replay`) are the one way the web layer buffers a
request body. Gradio-free: `serve` passes in how to recognise a logged-in session.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

from assistant.settings import MB

logger = logging.getLogger(__name__)

_KB = 1024
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


# -- log lines ------------------------------------------------------------------------------------
def escape_controls(text: str) -> str:
    """`text` with every control character (newlines included) written as an escape, so one value is one line."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


class EscapingFormatter(logging.Formatter):
    """A log formatter whose messages cannot hold a line break: a request path with `%0a` forges no line.

    Only the message is escaped; an exception's trace (shrunk to one line by `OneLineTracebacks`)
    is left to the formatter as usual.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def log_config(level: str = "WARNING") -> dict:
    """`logging.config.dictConfig` for `serve` (uvicorn's loggers and ours): one escaped line per record."""
    handler = {"class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stderr"}
    quiet = {"handlers": ["line"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": {"()": EscapingFormatter, "fmt": "%(levelname)s: %(message)s"}},
        "handlers": {"line": handler},
        "root": {"handlers": ["line"], "level": level},
        "loggers": {"uvicorn": quiet, "uvicorn.error": quiet, "uvicorn.access": quiet},
    }


# -- bodies ---------------------------------------------------------------------------------------
class BodyTooLarge(Exception):
    """A request body went past its route's limit (`limit` bytes)."""

    def __init__(self, limit: int):
        super().__init__(f"The request body is larger than {_size(limit)}.")
        self.limit = limit


class BodyIncomplete(Exception):
    """The client went away (or the body was cut off at its limit) before the body ended."""


async def read_body(receive, limit: int) -> bytes:
    """A request body read whole, piece by piece, refused as soon as it passes `limit` bytes.

    Raises:
        BodyTooLarge: the body is longer than `limit`; what came after is not read.
        BodyIncomplete: the body ended early (a disconnect, or `RequestGuard` cut it off).
    """
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise BodyIncomplete()
        body += message.get("body", b"")
        if len(body) > limit:
            raise BodyTooLarge(limit)
        if not message.get("more_body"):
            break
    return bytes(body)


def replay(body: bytes, receive):
    """A `receive` that hands an app `body` (already read) as one message, then the client's later messages."""
    sent = False

    async def again():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def with_header(scope: dict, name: bytes, value: bytes) -> dict:
    """A copy of an ASGI scope with one header set (e.g. the content-length of a rewritten body)."""
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != name]
    return {**scope, "headers": [*headers, (name, value)]}


@dataclass(frozen=True)
class BodyLimits:
    """The largest body each route takes, in bytes. The routes' own tighter limits still apply after.

    Args:
        upload: One request to Gradio's upload route: all its files together (`ASSISTANT_MAX_UPLOAD_MB`);
            Gradio also holds each file to `ASSISTANT_MAX_FILE_MB` while it streams.
        event: A page event (Gradio's JSON routes): a question and its history.
        api: `/api/*` and `/v1/*`: a backstop above their own 64 KB / 256 KB limits.
        login: The login form.
        other: A body anywhere else.
    """

    upload: int = 100 * MB
    event: int = 1 * MB
    api: int = 1 * MB
    login: int = 16 * _KB
    other: int = 64 * _KB

    def for_request(self, method: str, path: str) -> int:
        if method in _SAFE_METHODS:
            return 0
        if path.rstrip("/") == "/gradio_api/upload":
            return self.upload
        if path.startswith(("/api/", "/v1/")):
            return self.api
        if path.rstrip("/") == "/login":
            return self.login
        if path.startswith("/gradio_api/"):
            return self.event
        return self.other


def _size(n: int) -> str:
    return f"{n / MB:g} MB" if n >= MB else f"{n / _KB:g} KB"


# -- origins --------------------------------------------------------------------------------------
class OriginPolicy:
    """Which web origins may use the server from a browser: its own, and the configured ones.

    A page on another site can make the browser send the user's cookie along; the server must
    neither let that page read the answer (no CORS grant) nor act on its requests. "Own" means
    the `Origin` names the same host and port as the request's `Host` header.

    Args:
        allowed: Extra origins (`https://app.example.com`), from `ASSISTANT_ALLOWED_ORIGINS`.
    """

    def __init__(self, allowed: frozenset[str] | set[str] | tuple[str, ...] = ()):
        self.allowed = frozenset(o for o in (normal_origin(a) for a in allowed) if o)

    def same(self, origin: str, host: str) -> bool:
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == host.strip().lower()

    def listed(self, origin: str) -> bool:
        return normal_origin(origin) in self.allowed

    def permits(self, origin: str, host: str) -> bool:
        return self.same(origin, host) or self.listed(origin)


def normal_origin(origin: str) -> str:
    """`scheme://host[:port]` in lower case ('' for anything else, `null` included)."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


def parse_origins(value: str | None) -> frozenset[str]:
    """`ASSISTANT_ALLOWED_ORIGINS`: origins separated by commas or spaces."""
    return frozenset(o for o in re.split(r"[,\s]+", value or "") if o)


# -- password guessing ----------------------------------------------------------------------------
@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


class LoginThrottle:
    """Per-client pause after repeated wrong passwords: a user who mistypes barely notices, a guesser pays.

    The first `free` failures cost nothing; each further one blocks that client's next password
    for `first_delay`, doubling up to `max_delay`. A success clears the count, and so does
    `forget_after` seconds without a failure. A blocked client is refused (429) even with the
    right password, so guessing cannot go faster than the schedule. Clients are told apart by
    address: behind a proxy every user shares one.

    Args:
        free: Failures allowed before any delay.
        first_delay / max_delay: Seconds blocked after the first delayed failure, and at most.
        forget_after: Seconds after the last failure when the count starts over.
        max_clients: Clients remembered (the oldest are forgotten first): memory stays bounded.
        clock: Seconds, monotonic (a test can pass its own).
    """

    def __init__(
        self,
        free: int = 5,
        first_delay: float = 1.0,
        max_delay: float = 60.0,
        forget_after: float = 900.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.free, self.first_delay, self.max_delay = free, first_delay, max_delay
        self.forget_after, self.max_clients, self.clock = forget_after, max_clients, clock
        self._clients: OrderedDict[str, _Failures] = OrderedDict()

    def wait(self, client: str) -> float:
        """Seconds before `client` may try a password again (0: now)."""
        record = self._clients.get(client)
        if record is None:
            return 0.0
        now = self.clock()
        if now - record.last > self.forget_after:
            del self._clients[client]
            return 0.0
        return max(0.0, record.blocked_until - now)

    def failed(self, client: str) -> None:
        now = self.clock()
        record = self._clients.pop(client, None) or _Failures()
        if now - record.last > self.forget_after:
            record = _Failures()
        record.count += 1
        record.last = now
        if record.count > self.free:
            record.blocked_until = now + min(self.max_delay, self.first_delay * 2 ** (record.count - self.free - 1))
        self._clients[client] = record
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)


# -- the guard ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GuardConfig:
    """What `RequestGuard` enforces.

    Args:
        session_ok: Whether a request's cookies hold a logged-in page session; None when the
            server has no password (nothing to check).
        origins: Which origins may use the server from a browser.
        limits: Body limits by route.
        throttle: Pause for repeated wrong passwords; None for none.
    """

    session_ok: Callable[[Mapping[str, str]], bool] | None
    origins: OriginPolicy
    limits: BodyLimits
    throttle: LoginThrottle | None


class RequestGuard:
    """ASGI middleware in front of everything: origin, password guessing, session and body size, from headers.

    Args:
        app: The app behind it (FastAPI with the API, the page mounted on it).
        config: What to enforce.
    """

    _CORS = (b"access-control-allow-origin", b"access-control-allow-credentials")

    def __init__(self, app, config: GuardConfig):
        self.app = app
        self.config = config

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope.get("method", "GET"), scope.get("path", "")
        headers = _headers(scope)
        origin, host = headers.get("origin"), headers.get("host", "")
        cfg = self.config
        if origin is not None and method == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(send, origin, host, headers)
            return
        if origin is not None and method not in _SAFE_METHODS and not cfg.origins.permits(origin, host):
            await _refuse(send, 403, f"Cross-origin request refused: {origin[:100]} may not use this server.",
                          path, method)  # fmt: skip
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        guessing = cfg.throttle is not None and _password_attempt(method, path, headers)
        if guessing and (wait := cfg.throttle.wait(client)) > 0:
            seconds = max(1, round(wait + 0.49))
            await _refuse(send, 429, f"Too many wrong passwords from this address; try again in {seconds} s.",
                          path, method, retry_after=seconds)  # fmt: skip
            return
        if cfg.session_ok is not None and _needs_session(method, path) and not cfg.session_ok(_cookies(headers)):
            await _refuse(send, 401, "Authentication required: log in first.", path, method)
            return
        limit = cfg.limits.for_request(method, path)
        declared = headers.get("content-length", "")
        if declared.strip().isdigit() and int(declared) > limit:
            await _refuse(send, 413, BodyTooLarge(limit).args[0], path, method)
            return
        exchange = _Exchange(send, origin if origin and cfg.origins.listed(origin) else None)
        try:
            await self.app(scope, exchange.capped(receive, limit, path, method), exchange.send)
        except Exception:
            if not exchange.refused:  # after our 413 the app only failed to read what was cut off
                raise
        if guessing:
            if exchange.status == 401 or (exchange.status == 400 and path.rstrip("/") == "/login"):
                cfg.throttle.failed(client)
            elif exchange.status is not None and exchange.status < 300:
                cfg.throttle.succeeded(client)

    async def _preflight(self, send, origin: str, host: str, headers: Mapping[str, str]) -> None:
        """Answer a CORS preflight here: granted only to the configured origins (the own one needs none)."""
        if not self.config.origins.permits(origin, host):
            await _refuse(send, 403, f"Cross-origin request refused: {origin[:100]} may not use this server.",
                          "preflight", "OPTIONS")  # fmt: skip
            return
        grant = [
            (b"access-control-allow-origin", origin.encode("latin-1", "replace")),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
            (b"access-control-max-age", b"600"),
            (b"vary", b"Origin"),
        ]
        if asked := headers.get("access-control-request-headers"):
            grant.append((b"access-control-allow-headers", asked.encode("latin-1", "replace")))
        await send({"type": "http.response.start", "status": 204, "headers": grant})
        await send({"type": "http.response.body", "body": b""})


class _Exchange:
    """One request's response side: notes the status, sets CORS headers, and answers 413 when a body overflows."""

    def __init__(self, send, granted_origin: str | None):
        self._send = send
        self._granted = granted_origin
        self.status: int | None = None
        self.refused = False

    async def send(self, message) -> None:
        if self.refused:
            return  # we already answered (413); the app's own answer goes nowhere
        if message["type"] == "http.response.start":
            self.status = message["status"]
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in RequestGuard._CORS]
            if self._granted is not None:
                headers += [(b"access-control-allow-origin", self._granted.encode("latin-1", "replace")),
                            (b"access-control-allow-credentials", b"true"), (b"vary", b"Origin")]  # fmt: skip
            message = {**message, "headers": headers}
        await self._send(message)

    def capped(self, receive, limit: int, path: str, method: str):
        """`receive` that counts the body; past `limit` it answers 413 (if it still can) and reports a disconnect."""
        seen = 0

        async def counted():
            nonlocal seen
            if self.refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    if self.status is None:
                        await _refuse(self._send, 413, BodyTooLarge(limit).args[0], path, method)
                    self.refused = True
                    return {"type": "http.disconnect"}
            return message

        return counted


def _password_attempt(method: str, path: str, headers: Mapping[str, str]) -> bool:
    """A request that tries a password: the login form, or any request carrying credentials in a header."""
    return (method == "POST" and path.rstrip("/") == "/login") or "authorization" in headers


def _needs_session(method: str, path: str) -> bool:
    """A page request that may carry a body: it needs a session before a byte of it is read.

    `/api/*` and `/v1/*` check their own credentials (HTTP Basic, API key) before reading, and
    the login form is how a session starts.
    """
    if method in _SAFE_METHODS or path.startswith(("/api/", "/v1/")):
        return False
    return path.rstrip("/") not in ("/login", "/logout")


def _headers(scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        out[key.decode("latin-1").lower()] = value.decode("latin-1")
    return out


def _cookies(headers: Mapping[str, str]) -> dict[str, str]:
    jar = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except CookieError:
        return {}
    return {k: m.value for k, m in jar.items()}


async def _refuse(send, status: int, message: str, path: str, method: str, *, retry_after: int | None = None) -> None:
    """Answer with `{"error": message}` and close the connection; one escaped line in the log."""
    if status != 401:
        logger.warning("refused %s %s (%d): %s", method, path[:200], status, message)
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # a refused body is not read to its end: no keep-alive after it
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
