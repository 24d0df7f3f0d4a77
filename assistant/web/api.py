"""The JSON API (`POST /api/ask`, `GET /api/health`) and its checks: body limits, history, HTTP Basic auth.

Plain Starlette routes (request in, response out) keep the validation and the error JSON in our
hands. FastAPI is imported only when the app is built.
"""

from __future__ import annotations

import json
import logging
import secrets

from assistant.documents import source_names
from assistant.errors import InputError
from assistant.web.service import Service, parse_history, public_error

_MAX_BODY = 64 * 1024  # an /api/ask body: a question and recent history fit many times over
logger = logging.getLogger(__name__)


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


def build_app(service: Service, *, auth: tuple[str, str] | None = None):
    """FastAPI with `/api/ask` and `/api/health`; the Gradio page is mounted on it at `/` by `serve`.

    Plain Starlette routes (request in, response out) keep the validation and the error JSON
    in our hands: bad input gets `{"error": ...}` with 400/413/415/422, never a framework error
    page, and the server log gets one line for it, never a stack trace.
    """
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    from assistant.pipeline import QuestionError

    app = FastAPI(title="Document assistant", docs_url=None, redoc_url=None, openapi_url=None)

    def error(message: str, status: int, **headers) -> JSONResponse:
        if status != 401:
            logger.warning("/api/ask answered %d: %s", status, message)
        return JSONResponse({"error": message}, status_code=status, headers=headers or None)

    async def health(request) -> JSONResponse:
        """Up as soon as the port is bound: `ok` once the start is settled, `starting` (what it does) before."""
        state = service.readiness()
        if state.failed:
            return JSONResponse({"status": "error", "detail": state.note}, status_code=503)
        if not state.ready:
            return JSONResponse({"status": "starting", "detail": state.note})
        return JSONResponse({"status": "ok"})

    async def ask(request) -> JSONResponse:
        if auth is not None and not basic_auth_ok(request.headers.get("authorization", ""), auth):
            return error("Authentication required.", 401, **{"WWW-Authenticate": 'Basic realm="assistant"'})
        try:
            body = await read_json(request)
        except BodyError as exc:
            return error(str(exc), exc.status)
        if not isinstance(body, dict) or "question" not in body:
            return error('Missing "question".', 422)
        if not isinstance(body["question"], str):
            return error('"question" must be text.', 422)
        generator = body.get("generator")
        try:
            history = parse_history(body.get("history"))
            assistant = service.assistant(generator)
            sources = await run_in_threadpool(service.scope, source_names(body.get("sources")))
        except ValueError as exc:
            return error(str(exc), 422)
        try:  # answering and naming the sources read the store: off the event loop
            answer = await run_in_threadpool(assistant.answer, body["question"], history, sources)
            public = await run_in_threadpool(service.public, answer)
        except QuestionError as exc:
            return error(str(exc), 400)
        except Exception as exc:
            return error(public_error(exc), 500)
        return JSONResponse(public)

    app.router.add_route("/api/health", health, methods=["GET"])
    app.router.add_route("/api/ask", ask, methods=["POST"])
    from assistant.web.openai import openai_routes  # the OpenAI-compatible /v1 (chat completions, models)

    app.router.routes.extend(openai_routes(service, auth=auth, api_key=service.settings.api_key))
    return app


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
