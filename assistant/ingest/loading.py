"""Turn files and folders into `Document`s, and say in plain words why a file was left out.

Loading never raises for a bad file: every problem becomes a `Skipped` with a reason a user can
act on ("encrypted PDF", "file too large ..."), so one odd file never stops an indexing run.

Each format's loader lives in `formats/` (one registry); this module walks folders, applies the
limits every format shares (size, zip containers, text length) and dispatches by suffix. Each
file's bytes are parsed by `formats.parse` inside a worker process bounded in memory and time
(`worker.py`), so no file, however it is built, can take the machine down.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from assistant.errors import first_line
from assistant.ingest import formats, worker
from assistant.ingest.formats.ocr import OcrOptions
from assistant.ingest.formats.text import EMPTY
from assistant.ingest.worker import ParseBounds
from assistant.schema import Document, Skipped
from assistant.settings import MB, Settings

logger = logging.getLogger(__name__)

# The one list of file types that can be indexed and uploaded (the upload widget and the README
# show it in this order).
SUPPORTED_SUFFIXES: tuple[str, ...] = formats.SUFFIXES

# An index folder is recognised by these files; of its content only the uploads folder (documents
# added through the chat page) is walked, so indexing a folder that holds the index skips the index.
_INDEX_MARKERS = ("chroma.sqlite3", ".index.lock")
INDEX_UPLOADS = "uploads"

DEFAULT_MAX_CHARS: int = Settings.max_chars_per_file
DEFAULT_BOUNDS = ParseBounds(Settings.parse_memory_mb, Settings.parse_step_seconds)


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
    paths: Iterable[str | Path],
    *,
    max_bytes: int | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    bounds: ParseBounds = DEFAULT_BOUNDS,
) -> LoadResult:
    """Load every file under `paths`; unusable files land in `skipped`, never in an exception."""
    result = LoadResult()
    for item in _walk(paths):
        if isinstance(item, Skipped):
            loaded = item
        else:
            loaded = load_file(item, max_bytes=max_bytes, max_chars=max_chars, bounds=bounds)
        if isinstance(loaded, Skipped):
            logger.debug("skipped %s: %s", loaded.path, loaded.reason)
            result.skipped.append(loaded)
        else:
            result.documents.append(loaded)
    return result


def load_file(
    path: Path,
    *,
    max_bytes: int | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    bounds: ParseBounds = DEFAULT_BOUNDS,
    ocr: OcrOptions | None = None,
) -> Document | Skipped:
    """Load one file as a `Document`, or return `Skipped` saying why it cannot be used.

    Args:
        path: The file.
        max_bytes: Larger files are skipped before they are read.
        max_chars: Files whose extracted text is longer are skipped: a small docx or pdf can
            expand to millions of passages (a decompression bomb).
        bounds: Memory and time one file's parse may take (it runs in a bounded worker process).
        ocr: How pictures of text are read (default: the `ASSISTANT_OCR*` settings of this process).
    """
    path = Path(path)
    try:
        loaded = _load(path, max_bytes, max_chars, bounds, ocr)
    except Exception as exc:  # a last guard: a bad file must never stop a run
        return Skipped(source_name(path), f"could not load: {first_line(exc, 100)}")
    if isinstance(loaded, Document) and len(loaded.text) > max_chars:
        return Skipped(loaded.source, _too_much_text(path, len(loaded.text), max_chars))
    return loaded


def _too_much_text(path: Path, chars: int, max_chars: int) -> str:
    fmt = formats.format_of(path.suffix.lower())
    if fmt is not None and fmt.verbatim:
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
        return Skipped(name, f"file too large ({info.st_size / MB:.1f} MB > limit {max_bytes / MB:g} MB)")
    return None


def _load(
    path: Path, max_bytes: int | None, max_chars: int, bounds: ParseBounds, ocr: OcrOptions | None
) -> Document | Skipped:
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
        return Skipped(name, EMPTY)
    return worker.parse(worker.ParseRequest(name, suffix, data, max_chars, ocr or OcrOptions.from_settings()), bounds)


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
