"""The chat page and the JSON API on one port: Gradio mounted on FastAPI, run by uvicorn.

This is the only module that imports Gradio (lazily, inside the functions that need it).
Document text is data, never markup: everything that comes from a document (answer text
included, since it is made of document sentences) is HTML-escaped here before it reaches the
page, and the chat renders no Markdown, so a `<script>` in a file shows as text.
"""

from __future__ import annotations

import html
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import UploadError
from .schema import Answer, Citation, Document
from .settings import Settings

UPLOAD_SUFFIXES = (".txt", ".md", ".html", ".pdf", ".docx")
EXAMPLES = (
    "Why might Russia not send S-400s?",
    "Who said Russia wouldn't want to antagonise Israel?",
    "Where are Putin and Pezeshkian meeting?",
    "What has Iran been supplying to Russia?",
)
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
_MB = 1024 * 1024
_CONTEXT_CHARS = 600  # neighbouring text shown around a cited passage
_MAX_HISTORY_TURNS = 20
_MARKER = re.compile(r"\[(\d+)\]")

CSS = """
#chat .message { font-size: 15px; line-height: 1.5; }
.cite { color: var(--color-accent); font-weight: 600; font-size: 0.8em; vertical-align: super; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.85em;
         background: #fde68a; color: #78350f; font-weight: 600; margin-right: 6px; }
.llm-warning { margin-top: 6px; font-size: 0.9em; color: #92400e; }
.source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px;
          margin-bottom: 10px; }
.source-head { display: flex; justify-content: space-between; gap: 8px; font-weight: 600; }
.source-score { font-weight: 400; opacity: 0.75; white-space: nowrap; }
.passage { white-space: pre-wrap; margin: 6px 0; font-size: 0.92em; }
.passage mark { background: #fef08a; color: inherit; padding: 0 1px; }
.context { white-space: pre-wrap; font-size: 0.88em; opacity: 0.85; }
.context .passage-in-context { background: rgba(254, 240, 138, 0.35); }
.muted { opacity: 0.7; }
table.docs { width: 100%; border-collapse: collapse; }
table.docs td, table.docs th { padding: 4px 8px; border-bottom: 1px solid var(--border-color-primary);
                               text-align: left; }
"""


# -- uploads ---------------------------------------------------------------------------------------
def safe_name(name: str) -> str:
    """A file name that cannot leave its folder: no directories, `..`, control or markup characters."""
    name = unicodedata.normalize("NFKC", str(name)).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # control, format, unassigned
    name = re.sub(r"[^\w.\- ()]+", "_", name)
    name = re.sub(r"\.{2,}", ".", name).strip(" ._")
    suffix = Path(name).suffix.lower()
    stem = name[: len(name) - len(suffix)] if suffix else name
    stem = stem.strip(" ._")[:100] or "upload"
    return stem + suffix


def save_upload(path: str | Path, original_name: str, folder: Path, *, max_mb: float) -> Path:
    """Copy an uploaded file into `folder` under a safe name; refuse unsupported types and big files."""
    name = safe_name(original_name)
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        shown = suffix or "no extension"
        raise UploadError(f"{name}: unsupported file type ({shown}); upload {', '.join(UPLOAD_SUFFIXES)} files.")
    size = Path(path).stat().st_size
    if size > max_mb * _MB:
        raise UploadError(f"{name}: file too large ({size / 1e6:.1f} MB > limit {max_mb:g} MB).")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if target.resolve().parent != folder.resolve():  # belt and braces: safe_name already forbids this
        raise UploadError(f"{name}: not a valid file name.")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            shutil.copyfileobj(src, out)
        os.replace(tmp, target)  # replaces a symlink itself, never writes through it
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# -- rendering (every document string is escaped here) ---------------------------------------------
def render_text(text: str) -> str:
    """Escaped text with line breaks kept and `[n]` markers styled as citations."""
    escaped = html.escape(text).replace("\n", "<br>")
    return _MARKER.sub(r'<span class="cite">[\1]</span>', escaped)


def render_answer(answer: Answer) -> str:
    """The chat bubble of a finished answer: a badge when declined, the LLM warning when there is one."""
    parts = ['<div class="answer-done">']  # marks a finished answer (streamed text has no wrapper)
    if answer.abstained:
        parts.append('<span class="badge">Not found in the documents</span>')
    parts.append(render_text(answer.text))
    if answer.warning:
        parts.append(f'<div class="llm-warning">⚠ {html.escape(answer.warning)}</div>')
    return "".join(parts) + "</div>"


def render_error(message: str) -> str:
    return f'<div class="answer-done"><span class="badge">Cannot answer</span>{html.escape(message)}</div>'


def where(citation: Citation) -> str:
    name = Path(citation.source).name or citation.source
    return f"{name}, page {citation.page}" if citation.page is not None else name


def highlight(passage: str, quote: str) -> str:
    """The escaped passage with the quoted sentence(s) in <mark>."""
    i = passage.find(quote) if quote else -1
    if i < 0:
        return html.escape(passage)
    j = i + len(quote)
    return f"{html.escape(passage[:i])}<mark>{html.escape(passage[i:j])}</mark>{html.escape(passage[j:])}"


class ContextReader:
    """The text around a cited passage, read back from its source document.

    Chunk offsets point into the loaded document text, so reloading the file and slicing gives
    the neighbouring text. When the file changed or is gone, there is no context to show.
    """

    def __init__(self, window: int = _CONTEXT_CHARS, max_mb: float = 25.0):
        self.window = window
        self.max_bytes = int(max_mb * _MB)

    def around(self, c: Citation) -> tuple[str, str] | None:
        try:
            stat = Path(c.source).stat()
        except OSError:
            return None
        doc = _load_cached(c.source, stat.st_mtime_ns, stat.st_size, self.max_bytes)
        if doc is None or doc.text[c.start : c.end] != c.text:
            return None
        before = doc.text[max(0, c.start - self.window) : c.start]
        after = doc.text[c.end : c.end + self.window]
        if c.start > self.window:
            before = "…" + before.split(" ", 1)[-1]
        if c.end + self.window < len(doc.text):
            after = after.rsplit(" ", 1)[0] + "…"
        return before, after


@lru_cache(maxsize=8)
def _load_cached(source: str, mtime_ns: int, size: int, max_bytes: int) -> Document | None:
    from .loading import load_file

    loaded = load_file(Path(source), max_bytes=max_bytes)
    return loaded if isinstance(loaded, Document) else None


def render_sources(answer: Answer | None, reader: ContextReader | None = None) -> str:
    """The sources panel: number, file (and page), score, passage with the quote marked, context."""
    if answer is None:
        return '<p class="muted">Ask a question: the passages the answer cites appear here.</p>'
    if answer.abstained or not answer.citations:
        return (
            '<p><span class="badge">Not found in the documents</span>'
            "No passage in the indexed documents answers this question.</p>"
        )
    reader = reader or ContextReader()
    cards = []
    for c in answer.citations:
        context = reader.around(c)
        more = ""
        if context:
            before, after = context
            more = (
                "<details><summary>Show surrounding text</summary>"
                f'<div class="context">{html.escape(before)}'
                f'<span class="passage-in-context">{html.escape(c.text)}</span>{html.escape(after)}</div>'
                "</details>"
            )
        cards.append(
            f'<div class="source" data-n="{c.n}">'
            f'<div class="source-head"><span>[{c.n}] {html.escape(where(c))}</span>'
            f'<span class="source-score">relevance {c.score:.2f}</span></div>'
            f'<div class="passage">{highlight(c.text, c.quote)}</div>{more}</div>'
        )
    return "".join(cards)


def render_documents(docs: dict[str, int]) -> str:
    if not docs:
        return '<p class="muted">No documents indexed yet.</p>'
    rows = "".join(
        f"<tr><td>{html.escape(Path(s).name)}</td><td>{n}</td>"
        f'<td class="muted">{html.escape(str(Path(s).parent))}</td></tr>'
        for s, n in docs.items()
    )
    return f'<table class="docs"><tr><th>Document</th><th>Chunks</th><th>Folder</th></tr>{rows}</table>'


# -- the service behind the page and the API --------------------------------------------------------
@dataclass
class Turn:
    question: str
    answer: str  # the raw answer text: what the pipeline sees as history
    shown: str  # the escaped HTML bubble


class Service:
    """One index shared by every user; one `Assistant` per generator, sharing store and model.

    Args:
        settings: The configuration `serve` was started with.
    """

    def __init__(self, settings: Settings):
        from .pipeline import Assistant

        self.settings = settings
        self.base = Assistant(settings)
        self.uploads = Path(settings.index_dir) / "uploads"
        self.reader = ContextReader(max_mb=settings.max_file_mb)
        self._variants: dict[str, object] = {self.base.settings.generator: self.base}
        self._lock = threading.Lock()

    @property
    def generators(self) -> list[str]:
        """The generators that are configured: extractive always, LLMs when they have an endpoint or model."""
        s = self.settings
        names = ["extractive"]
        if s.llm_url or s.llm_api_key or s.generator == "openai":
            names.append("openai")
        if s.llm_gguf or s.generator == "llamacpp":
            names.append("llamacpp")
        return names

    def assistant(self, generator: str | None = None):
        """The assistant for a generator; the extra ones reuse the base's index, model and lock."""
        name = generator or self.base.settings.generator
        if name not in self.generators:
            raise ValueError(f"Unknown generator {name!r}; choose one of {', '.join(self.generators)}.")
        with self._lock:
            if name not in self._variants:
                self._variants[name] = self.base.with_generator(name)
            return self._variants[name]

    def warm_up(self) -> None:
        """Build the index from seeds when empty and load the model, so the first user does not wait."""
        self.base.ensure_index()
        self.base.embedder.encode_queries(["warm up"])

    def documents(self) -> dict[str, int]:
        return self.base.documents()

    def upload(self, files: Sequence[str], progress=None) -> tuple[list[str], list[str]]:
        """Save and index uploads one by one; returns (what was indexed, what was refused and why)."""
        done, refused, saved = [], [], []
        for f in files:
            try:
                saved.append(save_upload(f, Path(f).name, self.uploads, max_mb=self.settings.max_file_mb))
            except UploadError as exc:
                refused.append(str(exc))
            except OSError as exc:
                refused.append(f"{safe_name(Path(f).name)}: could not be saved ({exc.strerror or exc}).")
        for i, path in enumerate(saved):
            if progress is not None:
                progress((i, len(saved)), desc=f"Indexing {path.name}")
            report = self.base.index([path])
            if report.skipped:
                refused += [f"{path.name}: {s.reason}" for s in report.skipped]
                path.unlink(missing_ok=True)
                continue
            chunks = self.documents().get(path.resolve().as_posix(), 0)
            state = "unchanged" if report.unchanged else "indexed"
            done.append(f"{path.name}: {state} ({chunks} passages)")
        return done, refused

    def remove(self, source: str) -> str:
        """Drop a document from the index; an uploaded copy is deleted so it does not come back."""
        if source not in self.documents():
            raise ValueError("That document is not in the index (any more).")
        removed = self.base.remove(source)
        path = Path(source)
        if path.parent == self.uploads.resolve():
            path.unlink(missing_ok=True)
        return f"Removed {path.name} ({removed} passages)."


# -- JSON API --------------------------------------------------------------------------------------
def parse_history(raw) -> list:
    """Validate an API history: [[user, assistant], ...] pairs or [{"role", "content"}] messages."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError('"history" must be a list of [user, assistant] pairs or {"role", "content"} messages.')
    for item in raw:
        if isinstance(item, dict):
            if item.get("role") not in ("user", "assistant", "system") or not isinstance(item.get("content"), str):
                raise ValueError('Each history message needs "role" (user or assistant) and text "content".')
        elif isinstance(item, (list, tuple)):
            if len(item) != 2 or not all(isinstance(x, str) or x is None for x in item):
                raise ValueError("Each history pair must be [user question, assistant answer].")
        else:
            raise ValueError("Each history item must be a [user, assistant] pair or a {role, content} message.")
    return raw[-2 * _MAX_HISTORY_TURNS :]


def build_app(service: Service, *, auth: tuple[str, str] | None = None):
    """FastAPI with `/api/ask` and `/api/health`; the Gradio page is mounted on it at `/` by `serve`.

    Plain Starlette routes (request in, response out) keep the validation and the error JSON
    in our hands: bad input gets `{"error": ...}` with 400/422, never a framework error page.
    """
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    from .errors import describe
    from .pipeline import QuestionError

    app = FastAPI(title="Document assistant", docs_url=None, redoc_url=None, openapi_url=None)

    def error(message: str, status: int, **headers) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers or None)

    async def health(request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def ask(request) -> JSONResponse:
        if auth is not None and not basic_auth_ok(request.headers.get("authorization", ""), auth):
            return error("Authentication required.", 401, **{"WWW-Authenticate": 'Basic realm="assistant"'})
        try:
            body = await request.json()
        except Exception:
            return error('The body must be JSON: {"question": "..."}.', 400)
        if not isinstance(body, dict) or "question" not in body:
            return error('Missing "question".', 422)
        if not isinstance(body["question"], str):
            return error('"question" must be text.', 422)
        generator = body.get("generator")
        try:
            history = parse_history(body.get("history"))
            assistant = service.assistant(generator)
        except ValueError as exc:
            return error(str(exc), 422)
        try:
            answer = await run_in_threadpool(assistant.answer, body["question"], history)
        except QuestionError as exc:
            return error(str(exc), 400)
        except Exception as exc:
            return error(describe(exc), 500)
        return JSONResponse(answer.to_dict())

    app.router.add_route("/api/health", health, methods=["GET"])
    app.router.add_route("/api/ask", ask, methods=["POST"])
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


# -- the page --------------------------------------------------------------------------------------
def build_blocks(service: Service, *, concurrency: int = 2):
    """The chat page: conversation, sources of the current answer, generator choice, documents."""
    import gradio as gr

    from .errors import describe

    def respond(question: str, turns: list[Turn], generator: str) -> Iterator:
        turns = list(turns or [])
        question = question or ""
        history = [(t.question, t.answer) for t in turns]
        shown = _messages(turns)
        asked = {"role": "user", "content": html.escape(question)}
        try:
            assistant = service.assistant(generator)
            text = ""
            for item in assistant.stream(question, history):
                if isinstance(item, str):
                    text += item
                    yield "", [*shown, asked, {"role": "assistant", "content": render_text(text)}], gr.skip(), turns
                else:
                    turn = Turn(question, item.text, render_answer(item))
                    turns.append(turn)
                    yield "", _messages(turns), render_sources(item, service.reader), turns
        except Exception as exc:  # a clear line in the chat, never a stack trace
            bubble = {"role": "assistant", "content": render_error(describe(exc))}
            yield question, [*shown, asked, bubble], gr.skip(), turns

    def clear():
        return [], [], render_sources(None), ""

    def upload(files, progress=gr.Progress()):  # noqa: B008 - Gradio injects progress this way
        if not files:
            return gr.skip(), gr.skip(), "<p class='muted'>Choose files to upload first.</p>", None
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]
        try:
            done, refused = service.upload(paths, progress=progress)
        except Exception as exc:
            done, refused = [], [describe(exc)]
        lines = [f"<li>✔ {html.escape(d)}</li>" for d in done] + [
            f"<li>✘ skipped {html.escape(r)}</li>" for r in refused
        ]
        docs = service.documents()
        return render_documents(docs), _choices(docs), f"<ul>{''.join(lines)}</ul>", None

    def remove(source):
        if not source:
            return gr.skip(), gr.skip(), "<p class='muted'>Pick a document to remove.</p>"
        try:
            message = service.remove(source)
        except Exception as exc:
            message = describe(exc)
        docs = service.documents()
        return render_documents(docs), _choices(docs), f"<p>{html.escape(message)}</p>"

    def refresh():
        docs = service.documents()
        return render_documents(docs), _choices(docs)

    def ask_api(question: str, history: list | None = None, generator: str | None = None) -> dict:
        """Answer from the documents; returns the JSON of `assistant ask --json`."""
        try:
            return service.assistant(generator).answer(question, parse_history(history)).to_dict()
        except Exception as exc:  # the client gets the one-line reason, not "error"
            raise gr.Error(describe(exc)) from None

    with gr.Blocks(
        title="Ask your documents",
        analytics_enabled=False,
        fill_width=True,
        delete_cache=(3600, 3600),  # Gradio's temporary copies of uploads; ours live in index_dir/uploads
    ) as demo:
        turns = gr.State([])
        gr.Markdown("## Ask your documents\nAnswers quote the indexed documents and cite them as [n].")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat-tab"), gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=380):
                    chatbot = gr.Chatbot(
                        elem_id="chat",
                        label="Conversation",
                        height=460,
                        render_markdown=False,  # document text is never markup
                        sanitize_html=True,
                        allow_tags=False,
                        feedback_options=None,
                        group_consecutive_messages=False,
                        buttons=["copy", "copy_all"],
                    )
                    with gr.Row():
                        question = gr.Textbox(
                            elem_id="question",
                            placeholder="Ask a question about the documents…",
                            show_label=False,
                            lines=1,
                            max_lines=4,
                            scale=5,
                            autofocus=True,
                        )
                        ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                    with gr.Row():
                        generator = gr.Dropdown(
                            service.generators,
                            value=service.base.settings.generator,
                            label="Generator",
                            interactive=len(service.generators) > 1,
                            scale=2,
                        )
                        clear_btn = gr.Button("Clear conversation", elem_id="clear", scale=1)
                    gr.Examples([[q] for q in EXAMPLES], inputs=question, label="Example questions")
                with gr.Column(scale=2, min_width=320):
                    gr.Markdown("### Sources")
                    sources = gr.HTML(render_sources(None), elem_id="sources")
            with gr.Tab("Documents", id="docs-tab"), gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    doc_list = gr.HTML(elem_id="documents")
                    with gr.Row():
                        to_remove = gr.Dropdown([], label="Document", scale=3)
                        remove_btn = gr.Button("Remove from index", variant="stop", scale=1)
                    removed = gr.HTML()
                with gr.Column(scale=2):
                    files = gr.File(
                        label=f"Upload {' '.join(UPLOAD_SUFFIXES)} (up to {service.settings.max_file_mb:g} MB each)",
                        file_count="multiple",
                        file_types=list(UPLOAD_SUFFIXES),
                        type="filepath",
                        elem_id="upload",
                    )
                    upload_btn = gr.Button("Upload and index", variant="primary", elem_id="upload-btn")
                    upload_status = gr.HTML(elem_id="upload-status")

        chat_io = {
            "fn": respond,
            "inputs": [question, turns, generator],
            "outputs": [question, chatbot, sources, turns],
        }
        question.submit(**chat_io, api_visibility="private")
        ask.click(**chat_io, api_visibility="private")
        clear_btn.click(clear, outputs=[chatbot, turns, sources, question], api_visibility="private", queue=False)
        chatbot.clear(clear, outputs=[chatbot, turns, sources, question], api_visibility="private", queue=False)
        upload_btn.click(
            upload,
            inputs=files,
            outputs=[doc_list, to_remove, upload_status, files],
            concurrency_limit=1,
            concurrency_id="index",
            api_visibility="private",
        )
        remove_btn.click(
            remove,
            inputs=to_remove,
            outputs=[doc_list, to_remove, removed],
            concurrency_limit=1,
            concurrency_id="index",
            api_visibility="private",
        )
        demo.load(refresh, outputs=[doc_list, to_remove], api_visibility="private")
        gr.api(ask_api, api_name="ask")

    demo.queue(default_concurrency_limit=concurrency, max_size=64)
    return demo


def _messages(turns: list[Turn]) -> list[dict]:
    out = []
    for t in turns:
        out.append({"role": "user", "content": html.escape(t.question)})
        out.append({"role": "assistant", "content": t.shown})
    return out


def _choices(docs: dict[str, int]):
    import gradio as gr

    return gr.update(choices=[(Path(s).name, s) for s in docs], value=None)


# -- serve -----------------------------------------------------------------------------------------
def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("Auth must be USER:PASS with a non-empty user and password.")
    return user, password


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 7860, auth: str | None = None,
          insecure: bool = False) -> int:
    """Run the page and the API on one port. Refuses a non-local address without a password (exit 2)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        credentials = parse_auth(auth or os.environ.get("ASSISTANT_AUTH"))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if host not in _LOCAL_HOSTS and credentials is None and not insecure:
        print(
            f"Refusing to serve on {host} without a password: anyone who can reach it could read your "
            "documents. Pass --auth USER:PASS (or set ASSISTANT_AUTH), or --insecure to allow it anyway.",
            file=sys.stderr,
        )
        return 2
    if host not in _LOCAL_HOSTS and credentials is None:
        print(f"WARNING: serving on {host} with no password (--insecure).", file=sys.stderr)
    elif credentials is not None:
        print(f"Password protection on (user {credentials[0]!r}) for the page and /api/ask.", file=sys.stderr)

    import gradio as gr
    import uvicorn

    service = Service(settings)
    print("Loading the model and the index…", file=sys.stderr, flush=True)
    service.warm_up()
    concurrency = max(2, os.cpu_count() or 2)
    demo = build_blocks(service, concurrency=concurrency)
    app = build_app(service, auth=credentials)
    app = gr.mount_gradio_app(
        app,
        demo,
        path="/",
        auth=credentials,
        max_file_size=int(settings.max_file_mb * _MB),
        ssr_mode=False,
        footer_links=["api"],
        css=CSS,
    )
    shown = f"[{host}]" if ":" in host else host
    print(f"Serving on http://{shown}:{port}  (page: /, API: POST /api/ask, GET /api/health)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
