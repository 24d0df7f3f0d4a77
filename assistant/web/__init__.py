"""The web layer: the chat page (Gradio) and the JSON API (FastAPI) over one shared `Service`.

Modules: `service` (the index behind every user, shown names, context around a passage),
`render` (all HTML; every document string escaped), `handlers` (the page's events as plain
methods), `api` (JSON routes, body limits, auth), `page` (Gradio layout and wiring), `uploads`
(safe saving of uploaded files; upload names without server paths), `guard` (origin, password
guessing, session and body size, judged from headers before a body is read), `server` (`serve`).
Only `page` and `server` import Gradio, and only inside their functions: importing this package
loads no web framework.
"""

from __future__ import annotations

from assistant.web.api import build_app
from assistant.web.checks import BodyError, basic_auth_ok, parse_auth, read_json
from assistant.web.conversations import ConversationStore, FeedbackRecord
from assistant.web.guard import BodyLimits, GuardConfig, LoginThrottle, OriginPolicy, RequestGuard, escape_controls
from assistant.web.handlers import AskResult, ChatHandlers, ChatView, DocumentsView, OpenView
from assistant.web.page import EXAMPLES, build_blocks
from assistant.web.render import (
    CSS,
    highlight,
    printable,
    render_answer,
    render_documents,
    render_error,
    render_sources,
    render_text,
    render_viewer,
    where,
)
from assistant.web.server import OneLineTracebacks, serve
from assistant.web.service import (
    ContextReader,
    DocumentInfo,
    Readiness,
    Service,
    SourceNames,
    Turn,
    parse_history,
    public_error,
)
from assistant.web.uploads import (
    UploadError,
    UploadGuard,
    check_upload_source,
    remove_partial_uploads,
    safe_name,
    save_upload,
)

__all__ = [
    "CSS",
    "EXAMPLES",
    "AskResult",
    "BodyError",
    "BodyLimits",
    "ChatHandlers",
    "ChatView",
    "ContextReader",
    "ConversationStore",
    "DocumentInfo",
    "DocumentsView",
    "FeedbackRecord",
    "GuardConfig",
    "LoginThrottle",
    "OneLineTracebacks",
    "OpenView",
    "OriginPolicy",
    "Readiness",
    "RequestGuard",
    "Service",
    "SourceNames",
    "Turn",
    "UploadError",
    "UploadGuard",
    "basic_auth_ok",
    "build_app",
    "build_blocks",
    "check_upload_source",
    "escape_controls",
    "highlight",
    "parse_auth",
    "parse_history",
    "printable",
    "public_error",
    "read_json",
    "remove_partial_uploads",
    "render_answer",
    "render_documents",
    "render_error",
    "render_sources",
    "render_text",
    "render_viewer",
    "safe_name",
    "save_upload",
    "serve",
    "where",
]
