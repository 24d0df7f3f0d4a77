"""The JSON API (`POST /api/ask`, `GET /api/health`) and its checks: body limits, history, HTTP Basic auth.

Plain Starlette routes (request in, response out) keep the validation and the error JSON in our
hands. FastAPI is imported only when the app is built.
"""

from __future__ import annotations

import logging

from assistant.documents import source_names
from assistant.web.checks import BodyError, basic_auth_ok, read_json
from assistant.web.service import Service, parse_history, public_error

logger = logging.getLogger(__name__)


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
    from assistant.web.openai import openai_routes  # imports starlette: only when an app is built

    app.router.routes.extend(openai_routes(service, auth=auth, api_key=service.settings.api_key))
    return app
