"""Credentials and JSON bodies, checked the same way by `/api` and the OpenAI-compatible `/v1`.

Both route families import these; neither imports the other. `RequestGuard` (guard.py) has
already capped the body by route before these run; `read_json` applies the route's own, smaller cap.
"""

from __future__ import annotations

import json
import secrets

from assistant.errors import InputError

_MAX_BODY = 64 * 1024  # an /api/ask body: a question and recent history fit many times over


class BodyError(InputError):
    """A request body refused before it is parsed; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def read_json(request, limit: int = _MAX_BODY):
    """The JSON value of a request body: JSON content type only, at most `limit` bytes, read in pieces.

    Raises:
        BodyError: 415 for another content type, 413 when larger than `limit`, 400 when not JSON.
    """
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json" and not kind.endswith("+json"):
        raise BodyError(415, 'Send JSON with "Content-Type: application/json": {"question": "..."}.')
    too_large = BodyError(413, f"The request body is larger than {limit // 1024} KB; send only recent history.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise too_large
    try:
        return json.loads(bytes(body))
    except (ValueError, RecursionError):
        raise BodyError(400, 'The body must be JSON: {"question": "..."}.') from None


def basic_auth_ok(header: str, auth: tuple[str, str]) -> bool:
    """Check an HTTP Basic `Authorization` header in constant time."""
    import base64

    scheme, _, value = header.partition(" ")
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except Exception:
        return False
    ok_user = secrets.compare_digest(user.encode(), auth[0].encode())
    ok_password = secrets.compare_digest(password.encode(), auth[1].encode())
    return scheme.lower() == "basic" and ok_user and ok_password


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise InputError("Auth must be USER:PASS with a non-empty user and password.")
    return user, password
