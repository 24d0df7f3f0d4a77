"""Turn files and folders into `Document`s, and say in plain words why a file was left out.

Loading never raises for a bad file: every problem becomes a `Skipped` with a reason a user can
act on ("encrypted PDF", "file too large ..."), so one odd file never stops an indexing run.

For .txt/.md the document text is the decoded file *unchanged*, so chunk offsets point into the
real file. For html/pdf/docx it is the extracted visible text; PDFs also record which character
range came from which page, so answers can cite page numbers.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from assistant.ingest import formats
from assistant.ingest.headings import Heading, markdown_headings, sections
from assistant.ingest.limits import check_zip, pdf_limits, pdf_within
from assistant.schema import Document, Skipped
from assistant.settings import Settings

logger = logging.getLogger(__name__)

# The one list of file types that can be indexed and uploaded (the upload widget and the README
# show it in this order).
SUPPORTED_SUFFIXES: tuple[str, ...] = (
    ".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".pptx", ".xlsx", ".csv", ".epub", ".eml",
)  # fmt: skip
_TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown"})
_HTML_SUFFIXES = frozenset({".html", ".htm"})

# An index folder is recognised by these files; of its content only the uploads folder (documents
# added through the chat page) is walked, so indexing a folder that holds the index skips the index.
_INDEX_MARKERS = ("chroma.sqlite3", ".index.lock")
INDEX_UPLOADS = "uploads"

_MB = 1024 * 1024
_BINARY = "binary file (not text)"
_EMPTY = "empty file"
DEFAULT_MAX_CHARS: int = Settings.max_chars_per_file
_ZIP_SUFFIXES = frozenset({".docx"}) | formats.ZIP_SUFFIXES  # zip containers, checked before parsing
_PDF_BYTES_PER_CHAR = 10  # page content a PDF may make extraction read, per character allowed (~2 min)

# Checked in this order: the UTF-32 LE BOM starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Control characters that do not occur in real text (C0 minus whitespace, DEL, C1).
_CONTROL = {c: None for c in [*range(0x09), *range(0x0E, 0x20), *range(0x7F, 0xA0)]}
_MAX_CONTROL_RATIO = 0.05

# html: subtrees whose text is never shown, and elements that start a new line of text.
_INVISIBLE = ("script", "style", "noscript", "template", "head", "iframe", "object", "svg")
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
    "h4", "h5", "h6", "header", "hr", "html", "legend", "li", "main", "nav", "ol", "p", "pre",
    "section", "summary", "table", "tbody", "thead", "tfoot", "tr", "ul",
})  # fmt: skip
_CELLS = frozenset({"td", "th"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


@dataclass
class LoadResult:
    """Documents that loaded, and files that did not (with the reason)."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def source_name(path: Path) -> str:
    """The `source` stored for a file: its resolved absolute path, so one file has one name.

    A path that cannot be resolved (broken link, missing file) keeps its absolute form.
    """
    path = Path(path)
    try:
        return path.resolve(strict=True).as_posix()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path)).as_posix()


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Yield the files named by `paths`, walking folders recursively in sorted order.

    Hidden entries (".git", ".DS_Store") inside folders are ignored, and so is an index folder's
    own content (its uploads excepted); explicitly given paths are always yielded, even if
    missing, so `load_file` can say what is wrong with them. Symlinked folders are followed once
    (loops are cut) and a file reached twice is yielded once.
    """
    for item in _walk(paths):
        if isinstance(item, Path):
            yield item


def load_paths(
    paths: Iterable[str | Path], *, max_bytes: int | None = None, max_chars: int = DEFAULT_MAX_CHARS
) -> LoadResult:
    """Load every file under `paths`; unusable files land in `skipped`, never in an exception."""
    result = LoadResult()
    for item in _walk(paths):
        loaded = item if isinstance(item, Skipped) else load_file(item, max_bytes=max_bytes, max_chars=max_chars)
        if isinstance(loaded, Skipped):
            logger.debug("skipped %s: %s", loaded.path, loaded.reason)
            result.skipped.append(loaded)
        else:
            result.documents.append(loaded)
    return result


def load_file(path: Path, *, max_bytes: int | None = None, max_chars: int = DEFAULT_MAX_CHARS) -> Document | Skipped:
    """Load one file as a `Document`, or return `Skipped` saying why it cannot be used.

    Args:
        path: The file.
        max_bytes: Larger files are skipped before they are read.
        max_chars: Files whose extracted text is longer are skipped: a small docx or pdf can
            expand to millions of passages (a decompression bomb).
    """
    path = Path(path)
    try:
        loaded = _load(path, max_bytes, max_chars)
    except Exception as exc:  # a last guard: a bad file must never stop a run
        return Skipped(source_name(path), f"could not load: {_short(exc)}")
    if isinstance(loaded, Document) and len(loaded.text) > max_chars:
        return Skipped(loaded.source, _too_much_text(path, len(loaded.text), max_chars))
    return loaded


def _too_much_text(path: Path, chars: int, max_chars: int) -> str:
    if path.suffix.lower() in _TEXT_SUFFIXES | _HTML_SUFFIXES:
        return f"too much text ({chars:,} characters > limit {max_chars:,}, ASSISTANT_MAX_CHARS_PER_FILE)"
    return _bomb(max_chars)


def _bomb(max_chars: int) -> str:
    return f"expands to more than {max_chars:,} characters (possible decompression bomb)"


def check_file(path: Path, *, max_bytes: int | None = None) -> Skipped | None:
    """Why a file cannot be used, judged from its name and metadata alone (None if it may be)."""
    name = source_name(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        reason = "broken symbolic link" if path.is_symlink() else "no such file or folder"
        return Skipped(name, reason)
    except OSError as exc:
        return Skipped(name, f"cannot read file ({exc.strerror or exc})")
    if stat.S_ISDIR(info.st_mode):
        return Skipped(name, "is a folder, not a file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        kind = f"'{suffix}'" if suffix else "(no extension)"
        return Skipped(name, f"unsupported file type {kind}")
    if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
        return Skipped(name, "not a regular file")
    if max_bytes is not None and info.st_size > max_bytes:
        return Skipped(name, f"file too large ({info.st_size / _MB:.1f} MB > limit {max_bytes / _MB:g} MB)")
    return None


def _load(path: Path, max_bytes: int | None, max_chars: int) -> Document | Skipped:
    skipped = check_file(path, max_bytes=max_bytes)
    if skipped is not None:
        return skipped
    name = source_name(path)
    suffix = path.suffix.lower()
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Skipped(name, f"cannot read file ({exc.strerror or exc})")
    if not data.strip():
        return Skipped(name, _EMPTY)

    if suffix in _TEXT_SUFFIXES:
        text = _decode(data)
        if text is None:
            return Skipped(name, _BINARY)
        marks = sections(markdown_headings(text), len(text)) if suffix != ".txt" else ()
        return Document(name, text, sections=marks) if text.strip() else Skipped(name, _EMPTY)
    if suffix in _HTML_SUFFIXES:
        text = _decode(data, html=True)
        if text is None:
            return Skipped(name, _BINARY)
        headings: list[Heading] = []
        text = html_to_text(text, headings)
        if not text:
            return Skipped(name, "no visible text")
        return Document(name, text, sections=sections(headings, len(text)))
    if suffix in _ZIP_SUFFIXES and (problem := check_zip(data)) is not None:
        return Skipped(name, problem)
    if suffix == ".pdf":
        budget = max(max_chars * _PDF_BYTES_PER_CHAR, _MB)
        if not pdf_within(data, budget):
            reason = f"page content expands to more than {budget / 1e6:,.0f} MB (possible decompression bomb)"
            return Skipped(name, reason)
        with pdf_limits(budget):
            return _load_pdf(name, data)
    if suffix in formats.LOADERS:  # slides, spreadsheets, e-books, mail (assistant/formats)
        return formats.LOADERS[suffix](name, data, max_chars)
    return _load_docx(name, data)


# -- folders -------------------------------------------------------------------------------------


def _walk(paths: Iterable[str | Path]) -> Iterator[Path | Skipped]:
    """`iter_files`, plus a `Skipped` for each folder that could not be listed."""
    if isinstance(paths, str | Path):  # a lone path, not an iterable of characters
        paths = [paths]
    seen_dirs: set[str] = set()
    seen_files: set[str] = set()

    def file(path: Path) -> Iterator[Path]:
        key = source_name(path)
        if key not in seen_files:
            seen_files.add(key)
            yield path

    def folder(path: Path) -> Iterator[Path | Skipped]:
        key = source_name(path)
        if key in seen_dirs:  # a symlink loop, or the same folder given twice
            return
        seen_dirs.add(key)
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield Skipped(key, f"cannot read folder ({exc.strerror or exc})")
            return
        if _is_index(path):  # an index inside the folder: only the documents uploaded to it are documents
            entries = [e for e in entries if e.name == INDEX_UPLOADS]
        for entry in entries:
            if entry.name.startswith("."):
                continue
            child = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows symlinks; a broken link is "not a dir"
            except OSError:
                is_dir = False
            yield from folder(child) if is_dir else file(child)

    for raw in paths:
        path = Path(raw)
        yield from folder(path) if path.is_dir() else file(path)


def _is_index(path: Path) -> bool:
    """Whether a folder holds an index (an embedded Chroma store, or this project's indexing lock)."""
    return any((path / marker).exists() for marker in _INDEX_MARKERS)


# -- text ----------------------------------------------------------------------------------------


def _decode(data: bytes, *, html: bool = False) -> str | None:
    """Decode file bytes as text, or return None if they are not text.

    A BOM decides the encoding; otherwise UTF-8, then (for html) the declared charset, then
    cp1252/Latin-1 — accepted only if the result has few control characters.
    """
    text = None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                pass
            break
    if text is None:
        if b"\x00" in data:
            return None
        text = _try_decode(data, "utf-8")
    if text is None and html:
        from bs4.dammit import EncodingDetector

        declared = EncodingDetector.find_declared_encoding(data, is_html=True)
        text = _try_decode(data, declared) if declared else None
    if text is None:
        text = _try_decode(data, "cp1252") or data.decode("latin-1")
    control = len(text) - len(text.translate(_CONTROL))
    return None if control > _MAX_CONTROL_RATIO * len(text) else text


def _try_decode(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def html_to_text(html: str, headings: list[Heading] | None = None) -> str:
    """The visible text of an html page: one line per block element, whitespace collapsed.

    Table cells of a row stay on one line, separated by " | ", so a row reads as a fact.
    `headings`, when given, receives the h1–h6 lines (offsets into the returned text).
    """
    from bs4 import BeautifulSoup, Comment, NavigableString, Tag
    from bs4.element import Declaration, Doctype, ProcessingInstruction

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all([*_INVISIBLE]) + soup.find_all(hidden=True):
        if not tag.decomposed:
            tag.decompose()
    hidden_strings = (Comment, Declaration, Doctype, ProcessingInstruction)

    lines: list[str] = []
    words: list[str] = []
    block = cell = None
    at = 0

    def flush() -> None:
        nonlocal at
        if words:
            line = " ".join(words)
            if headings is not None and block is not None and block.name in _HEADINGS:
                headings.append(Heading(int(block.name[1]), line, at))
            lines.append(line)
            at += len(line) + 1
            words.clear()

    for node in soup.descendants:
        if isinstance(node, Tag):
            if node.name == "br":
                flush()
            continue
        if not isinstance(node, NavigableString) or isinstance(node, hidden_strings):
            continue
        parts = node.split()
        if not parts:
            continue
        node_block = node_cell = None
        for parent in node.parents:
            if node_cell is None and parent.name in _CELLS:
                node_cell = parent
            if parent.name in _BLOCKS:
                node_block = parent
                break
        if node_block is not block:
            flush()
        elif node_cell is not cell and words:
            words.append("|")
        block, cell = node_block, node_cell
        words.extend(parts)
    flush()
    return "\n".join(lines)


# -- pdf -----------------------------------------------------------------------------------------


def _load_pdf(name: str, data: bytes) -> Document | Skipped:
    """Text in reading order, paragraph by paragraph, with each page's character range.

    How: `pdf_reading` (PDFium's character boxes) and `pdf_layout` (columns, paragraphs,
    hyphenation, headers and footnotes). Text the PDF loses (unreadable pages, images without
    text, undecodable fonts) is reported once as the document's warnings.
    """
    from assistant.ingest.formats.pdf.glyphs import PdfUnreadable, read_glyphs
    from assistant.ingest.formats.pdf.layout import PdfLayout, english_words

    if b"%PDF-" not in data[:1024]:
        return Skipped(name, "corrupt or unreadable PDF: not a PDF file")
    try:
        glyphs = read_glyphs(data)
    except PdfUnreadable as exc:
        return Skipped(name, str(exc))
    result = PdfLayout(english_words()).run(glyphs.pages)
    if not result.pages:
        return Skipped(name, "no extractable text (scanned PDF?)")
    return Document(name, result.text, result.pages, warnings=glyphs.warnings)


# -- docx ----------------------------------------------------------------------------------------


def _load_docx(name: str, data: bytes) -> Document | Skipped:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        blocks: list[str] = []
        headings: list[Heading] = []
        at = 0
        for item in document.iter_inner_content():  # paragraphs and tables in document order
            text = _table_text(item) if isinstance(item, Table) else item.text.strip()
            if text:
                if (level := _heading_level(item)) is not None:
                    headings.append(Heading(level, text, at))
                blocks.append(text)
                at += len(text) + 2
    except Exception:  # zip, xml, package and key errors alike
        return Skipped(name, "not a valid .docx file")
    text = "\n\n".join(blocks)
    if not text:
        return Skipped(name, "no text in document")
    return Document(name, text, sections=sections(headings, len(text)))


def _heading_level(paragraph) -> int | None:
    """1 for a "Title" or "Heading 1" paragraph, N for "Heading N"; None for other text."""
    style = getattr(getattr(paragraph, "style", None), "name", "") or ""
    if style == "Title":
        return 1
    if style.startswith("Heading ") and style[8:].strip().isdigit():
        return int(style[8:])
    return None


def _table_text(table) -> str:
    """One line per row, cells separated by " | " (merged cells counted once)."""
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            text = " ".join(cell.text.split())
            if text:
                cells.append(text)
        if cells:
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _short(exc: BaseException, limit: int = 100) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
