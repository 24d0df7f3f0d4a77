"""What the chat page and the JSON API share: one index behind every user, shown names, context.

Gradio-free and FastAPI-free, so it can be used and tested without a web framework loaded.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

from assistant.errors import InputError
from assistant.ingest.loading import INDEX_UPLOADS
from assistant.schema import Answer, Citation, Document, WarmUp
from assistant.settings import MB, Settings
from assistant.web.conversations import FILE_NAME as CONVERSATIONS_FILE
from assistant.web.conversations import ConversationStore
from assistant.web.uploads import UploadError, check_upload_source, remove_partial_uploads, safe_name, save_upload

_CONTEXT_CHARS = 600  # neighbouring text shown around a cited passage
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s/'\"<>]+/)+([^\s/'\"<>]*)")  # not the path of a URL
logger = logging.getLogger(__name__)


def public_error(exc: BaseException) -> str:
    """The one-line reason for a client: `describe`, with server paths cut to their last part."""
    from assistant.errors import describe

    return _ABSOLUTE_PATH.sub(r"…/\1", describe(exc))


class ContextReader:
    """The text around a cited passage, read back from its source document.

    Chunk offsets point into the loaded document text, so reloading the file and slicing gives
    the neighbouring text. When the file changed or is gone, there is no context to show.
    """

    def __init__(self, window: int = _CONTEXT_CHARS, max_mb: float = 25.0, max_chars: int | None = None):
        self.window = window
        self.max_bytes = int(max_mb * MB)
        self.max_chars = max_chars if max_chars is not None else Settings.max_chars_per_file

    def around(self, c: Citation, window: int | None = None) -> tuple[str, str] | None:
        """The text before and after the passage (`window` characters each), or None if the file changed."""
        window = self.window if window is None else window
        doc = self.document(c)
        if doc is None:
            return None
        before = doc.text[max(0, c.start - window) : c.start]
        after = doc.text[c.end : c.end + window]
        if c.start > window:
            before = "…" + before.split(" ", 1)[-1]
        if c.end + window < len(doc.text):
            after = after.rsplit(" ", 1)[0] + "…"
        return before, after

    def document(self, c: Citation) -> Document | None:
        """The cited document as loaded, if it still holds the passage where the citation says."""
        try:
            stat = Path(c.source).stat()
        except OSError:
            return None
        doc = _load_cached(c.source, stat.st_mtime_ns, stat.st_size, self.max_bytes, self.max_chars)
        if doc is None or doc.text[c.start : c.end] != c.text:
            return None
        return doc


@lru_cache(maxsize=8)
def _load_cached(source: str, mtime_ns: int, size: int, max_bytes: int, max_chars: int) -> Document | None:
    from assistant.ingest.loading import load_file

    loaded = load_file(Path(source), max_bytes=max_bytes, max_chars=max_chars)
    return loaded if isinstance(loaded, Document) else None


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


@dataclass(frozen=True)
class Readiness:
    """How far the server's start has come: `serve` answers before the index, uploads and model are settled.

    Attributes:
        ready: Everything is settled (questions were answered before too, from the index as it was).
        note: What is under way, or what the start did (a recovered upload); "" for nothing to say.
        failed: The start failed; `note` says why.
    """

    ready: bool
    note: str = ""
    failed: bool = False


@dataclass(frozen=True)
class DocumentInfo:
    """A row of the Documents table: the source, its passages, pages (or slides), size and date added."""

    source: str
    passages: int
    pages: int | None = None
    unit: str = "pages"  # "slides" for a presentation
    size: int | None = None  # bytes
    added: float | None = None  # seconds since the epoch: when the file was saved (an upload) or last changed


def document_info(source: str, passages: int) -> DocumentInfo:
    """What the Documents table shows of a source; the file is looked at, not loaded."""
    try:
        st = Path(source).stat()
    except OSError:
        return DocumentInfo(source, passages)
    pages, unit = _page_count(source, st.st_mtime_ns, st.st_size)
    return DocumentInfo(source, passages, pages, unit, st.st_size, st.st_mtime)


@lru_cache(maxsize=512)
def _page_count(source: str, mtime_ns: int, size: int) -> tuple[int | None, str]:
    """Pages of a PDF (PDFium reads only its page tree) or slides of a .pptx (its zip's slide parts)."""
    suffix = Path(source).suffix.lower()
    try:
        if suffix == ".pdf":
            import pypdfium2 as pdfium

            from assistant.ingest.formats.pdf.glyphs import PDFIUM

            with PDFIUM:
                pdf = pdfium.PdfDocument(source)
                try:
                    return len(pdf), "pages"
                finally:
                    pdf.close()
        if suffix == ".pptx":
            import zipfile

            with zipfile.ZipFile(source) as z:
                names = z.namelist()
            return sum(1 for n in names if re.fullmatch(r"ppt/slides/slide\d+\.xml", n)), "slides"
    except Exception:  # an unreadable count is left blank
        return None, "pages"
    return None, "pages"


@dataclass
class Turn:
    question: str
    answer: str  # the raw answer text: what the pipeline sees as history
    shown: str  # the escaped HTML bubble
    result: Answer | None = None  # the answer with its citations (None for an error)
    feedback: int = 0  # +1 thumbs up, -1 thumbs down, 0 none


def _progress_line(progress, i: int, files: int):
    """An indexing progress callback that tells a Gradio-style `progress` the file, its stage and counts."""
    if progress is None:
        return None
    of = f" (file {i + 1} of {files})" if files > 1 else ""

    def tell(p) -> None:
        desc = f"{p.file}{of}: {p.stage}"
        if p.total:
            unit = "pages" if "pages" in p.stage else "passages"
            progress((p.done, p.total), desc=desc, unit=unit)
        else:
            progress(None, desc=desc)

    return tell


_MAX_HISTORY_TURNS = 20


def parse_history(raw) -> list:
    """Validate a client's history: [[user, assistant], ...] pairs or [{"role", "content"}] messages.

    Raises:
        InputError: the history is not one of those shapes (the message says which rule it broke).
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InputError('"history" must be a list of [user, assistant] pairs or {"role", "content"} messages.')
    for item in raw:
        if isinstance(item, dict):
            if item.get("role") not in ("user", "assistant", "system") or not isinstance(item.get("content"), str):
                raise InputError('Each history message needs "role" (user or assistant) and text "content".')
        elif isinstance(item, (list, tuple)):
            if len(item) != 2 or not all(isinstance(x, str) or x is None for x in item):
                raise InputError("Each history pair must be [user question, assistant answer].")
        else:
            raise InputError("Each history item must be a [user, assistant] pair or a {role, content} message.")
    return raw[-2 * _MAX_HISTORY_TURNS :]


class Service:
    """One index shared by every user; one `Assistant` per generator, sharing store and model.

    Args:
        settings: The configuration `serve` was started with.
    """

    def __init__(self, settings: Settings):
        from assistant.pipeline import Assistant

        self.settings = settings
        self.base = Assistant(settings)
        self.uploads = Path(settings.index_dir) / INDEX_UPLOADS
        self.reader = ContextReader(max_mb=settings.max_file_mb, max_chars=settings.max_chars_per_file)
        self.conversations = ConversationStore(Path(settings.index_dir) / CONVERSATIONS_FILE)
        self._variants: dict[str, object] = {self.base.settings.generator: self.base}
        self._lock = threading.Lock()
        self._names_lock = threading.Lock()
        self._names: tuple[str | None, SourceNames] | None = None
        self._readiness = Readiness(True)  # `warm_up` says otherwise while it runs

    @property
    def generators(self) -> list[str]:
        """The generators that are configured: the offline ones always, LLMs when they have an endpoint or model."""
        s = self.settings
        names = ["reader", "extractive"]
        if s.llm_url or s.llm_api_key or s.generator == "openai":
            names.append("openai")
        if s.llm_gguf or s.generator == "llamacpp":
            names.append("llamacpp")
        return names

    def assistant(self, generator: str | None = None):
        """The assistant for a generator; the extra ones reuse the base's index, model and lock."""
        name = generator or self.base.settings.generator
        if name not in self.generators:
            raise InputError(f"Unknown generator {name!r}; choose one of {', '.join(self.generators)}.")
        with self._lock:
            if name not in self._variants:
                self._variants[name] = self.base.with_generator(name)
            return self._variants[name]

    def readiness(self) -> Readiness:
        return self._readiness

    def warm_up(self) -> WarmUp:
        """Build the index from seeds when empty, settle `uploads/`, load the models: the first user does not wait.

        `serve` runs this in the background once the port is bound; `readiness()` says how far it is. What
        failed to load is printed, one line each, and returned (the server goes on without it).
        """
        try:
            self._readiness = Readiness(False, "Starting: opening the index…")
            self.base.ensure_index()
            note = self.recover_uploads()
            if note:
                print(f"Uploads folder {self.uploads}: {note}", file=sys.stderr, flush=True)
            self._readiness = Readiness(False, "Starting: loading the model…")
            report = self.base.warm_up()
        except Exception as exc:
            self._readiness = Readiness(True, f"The server could not start: {public_error(exc)}", failed=True)
            raise
        for line in report.lines():
            print(line, file=sys.stderr, flush=True)
        self._readiness = Readiness(True, f"After an interrupted upload, the server {note}" if note else "")
        return report

    def recover_uploads(self) -> str | None:
        """Settle what a killed upload left in `uploads/`; returns what was done (no server path), if anything.

        Unfinished copies (`.upload-*`) are deleted; complete files missing from the index (killed
        before indexing) are indexed, or deleted when they cannot be used, as an upload would be.
        """
        if not self.uploads.is_dir():
            return None
        partial = remove_partial_uploads(self.uploads)
        known = set(self.documents())
        missing = sorted(p for p in self.uploads.iterdir() if not p.name.startswith(".") and p.is_file()
                         and p.resolve().as_posix() not in known)  # fmt: skip
        if missing:
            self._readiness = Readiness(
                False, f"Recovering from an interrupted upload: indexing {len(missing)} file(s) that never reached "
                "the index. Questions are answered from the documents indexed before.",
            )  # fmt: skip
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
        return "; ".join(done) + "." if done else None

    def documents(self) -> dict[str, int]:
        return self.base.documents()

    def details(self) -> list[DocumentInfo]:
        """The Documents table's rows: passages, pages or slides, size and date added of each document."""
        return [document_info(s, n) for s, n in self.documents().items()]

    def names(self) -> SourceNames:
        """The shown names of the indexed sources, rebuilt only when the index changed."""
        stamp = self.base.store.generation()
        with self._names_lock:  # one rebuild per change, however many requests ask at once
            cached = self._names
            if cached is not None and stamp is not None and cached[0] == stamp:
                return cached[1]
            names = SourceNames(self.documents(), self.uploads)
            self._names = (stamp, names)
            return names

    def scope(self, names: list[str] | None) -> list[str] | None:
        """The sources that a client's document names mean (shown names, or file names), for a
        question limited to them; None for every document. Raises `SourceError` for an unknown name."""
        if not names:
            return None
        shown = self.names()
        return self.base.resolve_sources([shown.source(n) or n for n in names])

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
            progress: Called as Gradio's progress is, `progress((done, total), desc=..., unit=...)`, at each
                stage of indexing each file (pages read, passages embedded).
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
            report = self.base.index([path], progress=_progress_line(progress, i, len(saved)))
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
            raise InputError("That document is not in the index (any more).")
        removed = self.base.remove(source)
        if names.is_upload(source):
            try:
                Path(source).unlink(missing_ok=True)
            except OSError as exc:
                return f"Removed {shown} from the index ({removed} passages); its upload stays: {exc.strerror}."
        return f"Removed {shown} ({removed} passages)."
