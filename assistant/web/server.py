"""`serve`: the chat page and the JSON API on one port, Gradio mounted on FastAPI, run by uvicorn."""

from __future__ import annotations

import io
import logging
import os
import sys
import threading

from assistant.settings import MB, Settings
from assistant.web.api import build_app
from assistant.web.checks import parse_auth
from assistant.web.guard import (
    BodyLimits,
    GuardConfig,
    LoginThrottle,
    OriginPolicy,
    RequestGuard,
    log_config,
    parse_origins,
)
from assistant.web.page import build_blocks
from assistant.web.render import CSS
from assistant.web.service import Service, public_error
from assistant.web.uploads import UploadGuard

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
logger = logging.getLogger(__name__)


def serve(
    settings: Settings, *, host: str = "127.0.0.1", port: int = 7860, auth: str | None = None, insecure: bool = False
) -> int:
    """Run the page and the API on one port. Refuses a non-local address without a password (exit 2).

    The port is bound first; the index, any upload a crash interrupted and the model are settled
    in the background (`Service.readiness`, shown on the page and by `/api/health`).
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        credentials = parse_auth(auth or os.environ.get("ASSISTANT_AUTH"))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not _exposure_ok(host, credentials, insecure):
        return 2

    import gradio as gr
    import uvicorn
    from gradio.utils import get_upload_folder

    if os.environ.get("ASSISTANT_DEBUG") != "1":
        sys.stderr = OneLineTracebacks(sys.stderr)
    service = Service(settings)
    demo = build_blocks(service, concurrency=max(2, os.cpu_count() or 2))
    app = gr.mount_gradio_app(
        build_app(service, auth=credentials),
        demo,
        path="/",
        auth=credentials,
        max_file_size=int(settings.max_file_mb * MB),
        ssr_mode=False,
        footer_links=["api"],
        css=CSS,
    )
    # A crafted event can name any server path as an "uploaded" file, and Gradio copies it into its
    # cache before a handler runs. `launch()` turns Gradio's own check on; a mounted app must ask.
    demo.has_launched = True
    page = _gradio_app(app)
    _plain_validation_errors(page)
    app.add_middleware(
        UploadGuard,
        folder=get_upload_folder(),
        known_event=_event_checker(demo),
        known_api=lambda name: any(fn.api_name == name for fn in demo.fns.values()),
    )
    guarded = RequestGuard(
        app,
        GuardConfig(
            session_ok=_session_checker(page) if credentials else None,
            origins=OriginPolicy(parse_origins(settings.allowed_origins)),
            limits=BodyLimits(upload=int(settings.max_upload_mb * MB)),
            throttle=LoginThrottle(),
        ),
    )
    server = uvicorn.Server(uvicorn.Config(guarded, host=host, port=port, log_config=log_config()))
    shown = f"[{host}]" if ":" in host else host
    print(
        f"Serving on http://{shown}:{port}  (page: /, API: POST /api/ask, GET /api/health, OpenAI-compatible: /v1)",
        flush=True,
    )
    print("Loading the model and the index in the background…", file=sys.stderr, flush=True)
    threading.Thread(target=_warm_up, args=(service, server), name="warm-up", daemon=True).start()
    server.run()
    return 1 if service.readiness().failed else 0


def _warm_up(service: Service, server) -> None:
    """Settle the index, interrupted uploads and the model; a failure stops the server with one line."""
    try:
        service.warm_up()
    except Exception as exc:
        print(f"error: {public_error(exc)}", file=sys.stderr, flush=True)
        server.should_exit = True
        return
    print("Ready: the index and the model are loaded.", file=sys.stderr, flush=True)


def _gradio_app(app):
    """The Gradio app `mount_gradio_app` mounted on ours (it holds the page's login sessions)."""
    for route in app.routes:
        inner = getattr(route, "app", None)
        if inner is not None and hasattr(inner, "tokens") and hasattr(inner, "cookie_id"):
            return inner
    raise RuntimeError("The Gradio app is not mounted.")


def _session_checker(page):
    """Whether a request's cookies hold a session of the page's login (Gradio's own cookie and token table)."""
    names = (f"access-token-{page.cookie_id}", f"access-token-unsecure-{page.cookie_id}")

    def ok(cookies) -> bool:
        return any(cookies.get(n) and cookies.get(n) in page.tokens for n in names)

    return ok


def _event_checker(demo):
    """Whether the page (for this session) has the function an event names, as Gradio will look it up."""

    def known(session: str | None, fn_index: int) -> bool:
        holder = demo.state_holder
        if session is not None and session in holder:
            return fn_index in holder[session].blocks_config.fns
        return fn_index in demo.fns

    return known


def _plain_validation_errors(page) -> None:
    """A malformed page request gets one plain sentence; pydantic's report (it echoes the input) stays in the log."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    async def invalid(request, exc) -> JSONResponse:
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors()[:5])
        logger.warning("refused %s: malformed request (%s)", request.url.path, fields or "body")
        return JSONResponse({"error": "The request is malformed: reload the page and try again."}, status_code=422)

    page.add_exception_handler(RequestValidationError, invalid)


def _exposure_ok(host: str, credentials: tuple[str, str] | None, insecure: bool) -> bool:
    """False (after saying why) for a non-local address without a password unless `insecure`."""
    if host not in _LOCAL_HOSTS and credentials is None and not insecure:
        print(
            f"Refusing to serve on {host} without a password: anyone who can reach it could read your "
            "documents. Pass --auth USER:PASS (or set ASSISTANT_AUTH), or --insecure to allow it anyway.",
            file=sys.stderr,
        )
        return False
    if host not in _LOCAL_HOSTS and credentials is None:
        print(f"WARNING: serving on {host} with no password (--insecure).", file=sys.stderr)
    elif credentials is not None:
        print(f"Password protection on (user {credentials[0]!r}) for the page and /api/ask.", file=sys.stderr)
    return True


class OneLineTracebacks(io.TextIOBase):
    """A stderr for `serve` on which a Python stack trace shrinks to its exception line.

    Gradio prints a full stack trace for every malformed event a client sends (and uvicorn for
    any error in a request); the server log should say what happened in one line, not show the
    server's code paths. `traceback` writes an exception's message, and `logging` a whole record,
    in one `write`, so the rest of that write is the rest of the message. `ASSISTANT_DEBUG=1`
    keeps the full traces.

    Args:
        stream: Where the lines go (the real stderr).
    """

    _HEAD = "Traceback (most recent call last):"
    _CHAIN = ("During handling of the above exception", "The above exception was the direct cause")

    def __init__(self, stream):
        self.stream = stream
        self._pending = ""
        self._in_trace = False  # between the head and the exception line
        self._after_trace = False  # the exception line was written: the rest of this write is its message
        self._mid_line = False  # the start of the current line was already passed on
        self._last_error = False  # the last line passed on was an exception line
        self._lock = threading.Lock()  # worker threads and the event loop write at once

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            if self._last_error and text.lstrip("\n").startswith(self._CHAIN):
                return len(text)  # the glue between chained exceptions
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                self._line(line)
            self._after_trace = False
            if self._pending and not self._in_trace and not self._HEAD.startswith(self._pending):
                self.stream.write(self._pending)  # a partial line (a progress bar): pass it on now
                self._pending = ""
                self._mid_line = True
            return len(text)

    def _line(self, line: str) -> None:
        if self._mid_line:
            self._mid_line = False
            self.stream.write(line + "\n")
            return
        if line.startswith(self._HEAD):
            self._in_trace = True
            return
        if self._after_trace or (self._in_trace and (not line.strip() or line[:1].isspace())):
            return  # a frame, its source line, or the rest of a long exception message
        self._last_error = self._in_trace
        if self._in_trace:
            self._in_trace, self._after_trace = False, True
            line = f"error: {line}"
        self.stream.write(line + "\n")
        self.stream.flush()

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()
