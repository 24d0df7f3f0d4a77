"""The chat page and the JSON API on one port: Gradio mounted on FastAPI, run by uvicorn.

This is the only module that imports Gradio (lazily, inside the functions that need it).
Document text is data, never markup: everything that comes from a document (answer text
included, since it is made of document sentences) is HTML-escaped here before it reaches the
page, and the chat renders no Markdown, so a `<script>` in a file shows as text.
"""

from __future__ import annotations

import html
import io
import json
import logging
import os
import re
import secrets
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

from .loading import INDEX_UPLOADS
from .schema import Answer, Citation, Document
from .settings import Settings
from .uploads import (
    UPLOAD_SUFFIXES,
    UploadError,
    UploadGuard,
    check_upload_source,
    remove_partial_uploads,
    safe_name,
    save_upload,
)

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
_MAX_BODY = 64 * 1024  # an /api/ask body: a question and recent history fit many times over
_MARKER = re.compile(r"\[(\d+)\]")
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s/'\"<>]+/)+([^\s/'\"<>]*)")  # not the path of a URL
logger = logging.getLogger(__name__)

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


def where(citation: Citation, show: Callable[[str], str] | None = None) -> str:
    """The file (and page) of a citation as the page shows it; `show` maps a source to its shown name."""
    name = show(citation.source) if show else Path(citation.source).name or citation.source
    return f"{name}, page {citation.page}" if citation.page is not None else name


def public_error(exc: BaseException) -> str:
    """The one-line reason for a client: `describe`, with server paths cut to their last part."""
    from .errors import describe

    return _ABSOLUTE_PATH.sub(r"…/\1", describe(exc))


def printable(text: str) -> str:
    """Text that can be encoded for the page: a lone surrogate (half a UTF-16 pair) becomes "?"."""
    return text.encode("utf-8", "replace").decode("utf-8")


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

    def __init__(self, window: int = _CONTEXT_CHARS, max_mb: float = 25.0, max_chars: int | None = None):
        self.window = window
        self.max_bytes = int(max_mb * _MB)
        self.max_chars = max_chars if max_chars is not None else Settings.max_chars_per_file

    def around(self, c: Citation) -> tuple[str, str] | None:
        try:
            stat = Path(c.source).stat()
        except OSError:
            return None
        doc = _load_cached(c.source, stat.st_mtime_ns, stat.st_size, self.max_bytes, self.max_chars)
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
def _load_cached(source: str, mtime_ns: int, size: int, max_bytes: int, max_chars: int) -> Document | None:
    from .loading import load_file

    loaded = load_file(Path(source), max_bytes=max_bytes, max_chars=max_chars)
    return loaded if isinstance(loaded, Document) else None


def render_sources(
    answer: Answer | None, reader: ContextReader | None = None, show: Callable[[str], str] | None = None
) -> str:
    """The sources panel: number, file (and page), score, passage with the quote marked, context.

    Args:
        answer: The answer whose citations to show (None: the empty panel).
        reader: Reads the text around each passage.
        show: Maps a source to the name clients see (default: the file name).
    """
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
            f'<div class="source-head"><span>[{c.n}] {html.escape(where(c, show))}</span>'
            f'<span class="source-score">relevance {c.score:.2f}</span></div>'
            f'<div class="passage">{highlight(c.text, c.quote)}</div>{more}</div>'
        )
    return "".join(cards)


def render_documents(docs: dict[str, int], names: SourceNames) -> str:
    """The Documents table: each document by its shown name (never its server path), and its passages."""
    if not docs:
        return '<p class="muted">No documents indexed yet.</p>'
    rows = "".join(
        f"<tr><td>{html.escape(names.show(s))}</td><td>{n}</td>"
        f'<td class="muted">{"uploaded" if names.is_upload(s) else "indexed folder"}</td></tr>'
        for s, n in docs.items()
    )
    return f'<table class="docs"><tr><th>Document</th><th>Passages</th><th>From</th></tr>{rows}</table>'


class SourceNames:
    """The names clients see for indexed sources, and back: never an absolute server path.

    An uploaded file shows as its upload name (`notes.txt`); any other file as the shortest
    end of its path that tells it apart from the others, at least `folder/file`
    (`seeds/putin-pezeshkian-ashgabat-s400.txt`). The absolute path stays on the server.

    Args:
        sources: Every indexed source (absolute paths).
        uploads: The folder uploads are stored in.
    """

    def __init__(self, sources: Iterable[str], uploads: Path):
        self._uploads = Path(uploads).resolve().as_posix()
        parts = {s: PurePosixPath(s).parts[1:] or (s,) for s in sources}
        depth = {s: 1 if self.is_upload(s) else min(2, len(p)) for s, p in parts.items()}
        while True:
            shown = {s: "/".join(parts[s][-depth[s] :]) for s in parts}
            clashes = defaultdict(list)
            for s, name in shown.items():
                clashes[name].append(s)
            longer = [s for group in clashes.values() if len(group) > 1 for s in group
                      if not self.is_upload(s) and depth[s] < len(parts[s])]  # fmt: skip
            if not longer:
                break
            for s in longer:
                depth[s] += 1
        self._shown = shown
        self._source = {name: s for s, name in sorted(shown.items(), reverse=True)}

    def is_upload(self, source: str) -> bool:
        return PurePosixPath(source).parent.as_posix() == self._uploads

    def show(self, source: str) -> str:
        """The shown name of a source (a source not in the index shows as `folder/file`)."""
        if source in self._shown:
            return self._shown[source]
        parts = PurePosixPath(source).parts[1:]
        return "/".join(parts[-1 if self.is_upload(source) else -2 :]) or source

    def source(self, shown: str) -> str | None:
        """The source behind a shown name, or None when no indexed source has it."""
        return self._source.get(shown)


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
        self.uploads = Path(settings.index_dir) / INDEX_UPLOADS
        self.reader = ContextReader(max_mb=settings.max_file_mb, max_chars=settings.max_chars_per_file)
        self._variants: dict[str, object] = {self.base.settings.generator: self.base}
        self._lock = threading.Lock()
        self._names: tuple[str | None, SourceNames] | None = None

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
        """Build the index from seeds when empty, settle `uploads/`, load the model: the first user does not wait."""
        self.base.ensure_index()
        if note := self.recover_uploads():
            print(note, file=sys.stderr, flush=True)
        self.base.embedder.encode_queries(["warm up"])

    def recover_uploads(self) -> str | None:
        """Settle what a killed upload left in `uploads/`; returns a line saying what was done, if anything.

        Unfinished copies (`.upload-*`) are deleted; complete files missing from the index (killed
        before indexing) are indexed, or deleted when they cannot be used, as an upload would be.
        """
        if not self.uploads.is_dir():
            return None
        partial = remove_partial_uploads(self.uploads)
        known = set(self.documents())
        missing = sorted(p for p in self.uploads.iterdir() if not p.name.startswith(".") and p.is_file()
                         and p.resolve().as_posix() not in known)  # fmt: skip
        report = self.base.index(missing) if missing else None
        dropped = []
        for s in report.skipped if report else []:
            Path(s.path).unlink(missing_ok=True)
            dropped.append(f"{Path(s.path).name} ({s.reason})")
        done = []
        if partial:
            done.append(f"deleted {len(partial)} unfinished upload(s)")
        if indexed := len(missing) - len(dropped):
            done.append(f"indexed {indexed} upload(s) that were missing from the index")
        if dropped:
            done.append("deleted unusable " + ", ".join(dropped))
        return f"Uploads folder {self.uploads}: " + "; ".join(done) + "." if done else None

    def documents(self) -> dict[str, int]:
        return self.base.documents()

    def names(self) -> SourceNames:
        """The shown names of the indexed sources, rebuilt only when the index changed."""
        stamp = self.base.store.generation()
        cached = self._names
        if cached is not None and stamp is not None and cached[0] == stamp:
            return cached[1]
        names = SourceNames(self.documents(), self.uploads)
        self._names = (stamp, names)
        return names

    def public(self, answer: Answer) -> dict:
        """An answer's JSON for clients: each citation's source as its shown name, not a server path."""
        out = answer.to_dict()
        names = self.names()
        for c in out["citations"]:
            c["source"] = names.show(c["source"])
        return out

    def upload(
        self,
        files: Sequence[str],
        progress=None,
        *,
        folder: Path | None = None,
        received: Collection[str] | None = None,
    ) -> tuple[list[str], list[str]]:
        """Save and index uploads one by one; returns (what was indexed, what was refused and why).

        Args:
            files: Paths of the uploaded files (as Gradio stored them).
            progress: Called with ((done, total), desc=...) while indexing.
            folder / received: Gradio's upload folder and the paths its upload route wrote; when
                given, any other path is refused (see `check_upload_source`).
        """
        done, refused, saved = [], [], []
        for f in files:
            try:
                if folder is not None:
                    check_upload_source(f, folder, received)
                target = save_upload(f, Path(f).name, self.uploads, max_mb=self.settings.max_file_mb)
                saved.append((safe_name(Path(f).name), target))
            except UploadError as exc:
                refused.append(str(exc))
                logger.warning("upload refused: %s", exc)
            except OSError as exc:
                refused.append(f"{safe_name(Path(f).name)}: could not be saved ({exc.strerror or exc}).")
        for i, (name, path) in enumerate(saved):
            if progress is not None:
                progress((i, len(saved)), desc=f"Indexing {path.name}")
            report = self.base.index([path])
            if report.skipped:
                refused += [f"{path.name}: {s.reason}" for s in report.skipped]
                path.unlink(missing_ok=True)
                continue
            chunks = self.documents().get(path.resolve().as_posix(), 0)
            state = "unchanged" if report.unchanged else "indexed"
            renamed = f"; {name} holds a different document" if path.name != name else ""
            warned = "".join(f"; {w.reason}" for w in report.warnings)
            done.append(f"{path.name}: {state} ({chunks} passages{renamed}{warned})")
        return done, refused

    def remove(self, shown: str) -> str:
        """Drop a document (by its shown name) from the index; an uploaded copy is deleted so it does not come back."""
        names = self.names()
        source = names.source(shown)
        if source is None or source not in self.documents():
            raise ValueError("That document is not in the index (any more).")
        removed = self.base.remove(source)
        if names.is_upload(source):
            try:
                Path(source).unlink(missing_ok=True)
            except OSError as exc:
                return f"Removed {shown} from the index ({removed} passages); its upload stays: {exc.strerror}."
        return f"Removed {shown} ({removed} passages)."


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


class BodyError(ValueError):
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

    from .pipeline import QuestionError

    app = FastAPI(title="Document assistant", docs_url=None, redoc_url=None, openapi_url=None)

    def error(message: str, status: int, **headers) -> JSONResponse:
        if status != 401:
            logger.warning("/api/ask answered %d: %s", status, message)
        return JSONResponse({"error": message}, status_code=status, headers=headers or None)

    async def health(request) -> JSONResponse:
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
        except ValueError as exc:
            return error(str(exc), 422)
        try:
            answer = await run_in_threadpool(assistant.answer, body["question"], history)
        except QuestionError as exc:
            return error(str(exc), 400)
        except Exception as exc:
            return error(public_error(exc), 500)
        return JSONResponse(service.public(answer))

    app.router.add_route("/api/health", health, methods=["GET"])
    app.router.add_route("/api/ask", ask, methods=["POST"])
    from .web.openai import openai_routes  # OpenAI-compatible /v1 (chat completions, models)

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


# -- the page --------------------------------------------------------------------------------------
def build_blocks(service: Service, *, concurrency: int = 2):
    """The chat page: conversation, sources of the current answer, generator choice, documents."""
    import gradio as gr
    from gradio.utils import get_upload_folder

    def respond(question: str, turns: list[Turn], generator: str) -> Iterator:
        turns = list(turns or [])
        question = question or ""
        history = [(t.question, t.answer) for t in turns]
        shown = _messages(turns)
        asked = {"role": "user", "content": html.escape(printable(question))}
        try:
            assistant = service.assistant(generator)
            text = ""
            for item in assistant.stream(question, history):
                if isinstance(item, str):
                    text += item
                    yield "", [*shown, asked, {"role": "assistant", "content": render_text(text)}], gr.skip(), turns
                else:
                    turn = Turn(printable(question), item.text, render_answer(item))
                    turns.append(turn)
                    yield "", _messages(turns), render_sources(item, service.reader, service.names().show), turns
        except Exception as exc:  # a clear line in the chat, one line in the log, never a stack trace
            reason = public_error(exc)
            logger.warning("chat answered with an error: %s", reason)
            bubble = {"role": "assistant", "content": render_error(reason)}
            yield printable(question), [*shown, asked, bubble], gr.skip(), turns

    def clear():
        return [], [], render_sources(None), ""

    def upload(files, progress=gr.Progress()):  # noqa: B008 - Gradio injects progress this way
        if not files:
            return gr.skip(), gr.skip(), "<p class='muted'>Choose files to upload first.</p>", None
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]
        try:  # only files this server's upload route wrote: a crafted event can name any server path
            done, refused = service.upload(
                paths, progress=progress, folder=Path(get_upload_folder()), received=demo.upload_file_set
            )
        except Exception as exc:
            done, refused = [], [public_error(exc)]
        lines = [f"<li>✔ {html.escape(d)}</li>" for d in done] + [
            f"<li>✘ skipped {html.escape(r)}</li>" for r in refused
        ]
        return *documents(), f"<ul>{''.join(lines)}</ul>", None

    def remove(shown):
        if not shown:
            return gr.skip(), gr.skip(), "<p class='muted'>Pick a document to remove.</p>"
        try:
            message = service.remove(shown)
        except Exception as exc:
            message = public_error(exc)
        return *documents(), f"<p>{html.escape(message)}</p>"

    def documents():
        """The Documents table and the dropdown: shown names only; the server maps them back to sources."""
        docs, names = service.documents(), service.names()
        return render_documents(docs, names), gr.update(choices=[names.show(s) for s in docs], value=None)

    def ask_api(question: str, history: list | None = None, generator: str | None = None) -> dict:
        """Answer from the documents; returns the JSON of `assistant ask --json` (sources as shown names)."""
        try:
            return service.public(service.assistant(generator).answer(question, parse_history(history)))
        except Exception as exc:  # the client gets the one-line reason; the log gets one line
            reason = public_error(exc)
            logger.warning("/ask answered with an error: %s", reason)
            raise gr.Error(reason, print_exception=False) from None

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
                        render_markdown=False,  # document text is never markup ...
                        latex_delimiters=[],  # ... nor math: "$$x$$" in a document stays "$$x$$"
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
        demo.load(documents, outputs=[doc_list, to_remove], api_visibility="private")
        gr.api(ask_api, api_name="ask")

    demo.queue(default_concurrency_limit=concurrency, max_size=64)
    return demo


def _messages(turns: list[Turn]) -> list[dict]:
    out = []
    for t in turns:
        out.append({"role": "user", "content": html.escape(t.question)})
        out.append({"role": "assistant", "content": t.shown})
    return out


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
    from gradio.utils import get_upload_folder

    if os.environ.get("ASSISTANT_DEBUG") != "1":
        sys.stderr = OneLineTracebacks(sys.stderr)
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
    # A crafted event can name any server path as an "uploaded" file, and Gradio copies it into its
    # cache before a handler runs. `launch()` turns Gradio's own check on; a mounted app must ask.
    demo.has_launched = True
    app.add_middleware(UploadGuard, folder=get_upload_folder())
    shown = f"[{host}]" if ":" in host else host
    print(f"Serving on http://{shown}:{port}  (page: /, API: POST /api/ask, GET /api/health)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
