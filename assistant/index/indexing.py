"""Incremental indexing: only new or changed files are chunked and embedded.

A file is identified by its resolved path and judged unchanged by the hash of its bytes (and of
the chunking settings), so a re-run over the same folder loads, chunks and embeds nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.settings import MB
from assistant.ingest.chunking import CHUNKER_VERSION, Chunker
from assistant.embedding import Embedder
from assistant.errors import IndexBusyError
from assistant.ingest.formats.ocr import OcrOptions
from assistant.ingest.formats.pdf.glyphs import PAGE_READ
from assistant.ingest.loading import check_file, iter_files, load_file, source_name
from assistant.ingest.worker import ParseBounds
from assistant.ingest.records import RECORD_VERSION, RecordBuilder
from assistant.schema import Chunk, Document, IndexReport, Skipped
from assistant.settings import Settings
from assistant.index.store import FileRecord, FileUpdate, Store

__all__ = ["IndexBusyError", "Indexer"]


@dataclass
class PendingFile:
    """A new or changed document on its way into the index.

    Args:
        document: The loaded text.
        digest: Hash of its bytes and the chunking settings (what the file record will hold).
        previous: Its record in the index, if it was indexed before.
        chunks: Its passages, once cut.
    """

    document: Document
    digest: str
    previous: FileRecord | None
    chunks: list[Chunk] = field(default_factory=list)
    record: str = ""


@dataclass(frozen=True)
class IndexProgress:
    """Where an indexing run is: the file, the stage ("reading pages", "embedding passages", ...) and
    the count done of the stage's total (0 of 0 when the stage has no count)."""

    file: str
    stage: str
    done: int = 0
    total: int = 0


Progress = Callable[[IndexProgress], None]


class Indexer:
    """Brings the store in line with a set of files and folders.

    Args:
        store: Where chunks and file records go.
        embedder: Encodes chunk texts.
        settings: Chunk size, file size limit, progress bars.
    """

    # About this many chunks are embedded and stored per step: bounds memory and lost work, and small
    # enough that a run of a few hundred chunks already overlaps its writes with embedding.
    group_chunks = 256

    def __init__(self, store: Store, embedder: Embedder, settings: Settings):
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.chunker = Chunker(
            embedder.count_tokens, settings.chunk_tokens, settings.chunk_overlap_tokens, limit=embedder.max_seq_length
        )
        tokens, overlap = settings.chunk_tokens, settings.chunk_overlap_tokens
        self._tell: Progress = _silent
        self._fingerprint = f"chunker:{tokens}:{overlap}:v{CHUNKER_VERSION}:r{RECORD_VERSION}".encode()
        self.records = RecordBuilder()

    def index(self, paths: Iterable[str | Path], *, wait: bool = True, progress: Progress | None = None) -> IndexReport:
        """Index files and folders; files gone from a given folder are removed from the index.

        `progress` is told each stage as it goes (pages read, passages embedded), for a long file.
        """
        paths = [Path(p) for p in paths]
        with self._exclusive(wait=wait):
            self._tell = progress or _silent
            try:
                return self._index(paths)
            finally:
                self._tell = _silent

    def remove(self, source: str) -> int:
        """Drop a document from the index (waiting for a running indexing run); returns its chunk count."""
        with self._exclusive(wait=True), self.store.edit() as edit:
            return len(edit.remove([source]))

    def index_documents(self, documents: list[Document]) -> IndexReport:
        """Index already-loaded documents (e.g. records of a JSONL corpus), keyed by their source."""
        with self._exclusive(wait=True):
            records = self.store.files()
            report = IndexReport()
            todo = []
            for doc in documents:
                digest = self._hash(doc.text.encode())
                old = records.get(doc.source)
                if old and old.content_hash == digest:
                    report.unchanged += 1
                else:
                    todo.append(PendingFile(doc, digest, old, record=self.records.build(doc).to_json()))
                    report.updated += old is not None
                    report.added += old is None
            self._write(todo, records, report)
            return report

    # -- the run ---------------------------------------------------------------------------------
    def _index(self, paths: list[Path]) -> IndexReport:
        report = IndexReport()
        records = self.store.files()
        max_bytes = int(self.settings.max_file_mb * MB)
        bounds = ParseBounds(self.settings.parse_memory_mb, self.settings.parse_step_seconds)
        ocr = OcrOptions.from_settings(self.settings)
        seen: set[str] = set()
        todo: list[PendingFile] = []
        for path in iter_files(paths):
            skipped = check_file(path, max_bytes=max_bytes)
            source = source_name(path)
            if path.exists():
                seen.add(source)  # a file that is there but unusable keeps its earlier chunks
            if skipped is not None:
                report.skipped.append(skipped)
                continue
            try:
                data = path.read_bytes()
                digest = self._hash(data)
            except OSError as exc:
                report.skipped.append(Skipped(source, f"cannot read file ({exc.strerror or exc})"))
                continue
            old = records.get(source)
            if old and old.content_hash == digest:
                report.unchanged += 1
                continue
            self._tell(IndexProgress(path.name, "reading"))
            token = PAGE_READ.set(lambda n, of, name=path.name: self._tell(IndexProgress(name, "reading pages", n, of)))
            try:
                loaded = load_file(
                    path, max_bytes=max_bytes, max_chars=self.settings.max_chars_per_file, bounds=bounds, ocr=ocr
                )
            finally:
                PAGE_READ.reset(token)
            if isinstance(loaded, Skipped):
                report.skipped.append(loaded)
                continue
            record = self.records.build(loaded, data, path.suffix).to_json()
            todo.append(PendingFile(loaded, digest, old, record=record))
            report.warnings += [Skipped(source, w) for w in loaded.warnings]
            report.ocr_pages += len(loaded.ocr_pages)
            report.updated += old is not None
            report.added += old is None
        gone = [s for s in records if s not in seen and _under_any(s, paths)]
        self._write(todo, records, report, gone=gone)
        return report

    def _write(
        self, todo: list[PendingFile], records: dict[str, FileRecord], report: IndexReport, gone: list[str] = ()
    ) -> None:
        """Remove what is gone, then chunk, embed and store the pending files a group at a time.

        A group's Chroma and keyword writes run on a writer thread while the next group is
        embedded (onnxruntime and the tokenizers release the GIL), so indexing runs at about the
        model's own rate; writes stay one at a time and in order, so the crash-safety order of
        `Store.write_files` holds."""
        with self.store.edit() as edit, ThreadPoolExecutor(1, thread_name_prefix="index-write") as writer:
            edit.remove(list(gone), records)
            report.removed += len(gone)
            writing: Future | None = None
            with self._progress(sum(len(p.document.text) for p in todo)) as bar:
                for group in self._groups(todo):
                    for pending in group:
                        self._tell(IndexProgress(Path(pending.document.source).name, "cutting passages"))
                        pending.chunks = self.chunker.split(pending.document)
                    updates = self._updates(group, report)  # embedded while the previous group is written
                    if writing is not None:
                        writing.result()  # one write at a time, in order; its error stops the run here
                    writing = writer.submit(edit.write, updates)
                    writing.add_done_callback(lambda _, n=sum(len(p.document.text) for p in group): bar.update(n))
                if writing is not None:
                    writing.result()
        report.chunks = self.store.count()

    def _updates(self, group: list[PendingFile], report: IndexReport) -> list[FileUpdate]:
        """Embed the chunks a group's files did not have before, and pair each file with its new chunks."""
        old_ids = [set(p.previous.chunk_ids) if p.previous else set() for p in group]
        new = [c for p, old in zip(group, old_ids, strict=True) for c in p.chunks if c.id not in old]
        new = list({c.id: c for c in new}.values())
        vectors = self._embed(new, Path(group[0].document.source).name if len(group) == 1 else f"{len(group)} files")
        report.embedded += len(new)
        row = {c.id: i for i, c in enumerate(new)}
        updates = []
        for p in group:
            mine = [c for c in p.chunks if c.id in row]
            updates.append(
                FileUpdate(
                    p.document.source,
                    p.digest,
                    list(dict.fromkeys(c.id for c in p.chunks)),
                    mine,
                    vectors[[row[c.id] for c in mine]] if mine else vectors[:0],
                    previous=p.previous.chunk_ids if p.previous else (),
                    record=p.record,
                )
            )
        return updates

    def _embed(self, chunks: list, name: str) -> np.ndarray:
        """The chunks' vectors, a slice at a time (shortest first, as the embedder would) so progress can be told."""
        if not chunks:
            return self.embedder.encode([])
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i].text))
        step = 128
        parts = []
        for at in range(0, len(order), step):
            self._tell(IndexProgress(name, "embedding passages", at, len(chunks)))
            parts.append(self.embedder.encode([chunks[i].text for i in order[at : at + step]]))
        self._tell(IndexProgress(name, "saving", len(chunks), len(chunks)))
        vectors = np.empty_like(np.concatenate(parts))
        vectors[order] = np.concatenate(parts)
        return vectors

    def _groups(self, todo: list[PendingFile]) -> Iterator[list[PendingFile]]:
        group, size = [], 0
        for item in todo:
            group.append(item)
            size += max(1, len(item.document.text) // 800)
            if size >= self.group_chunks:
                yield group
                group, size = [], 0
        if group:
            yield group

    def _hash(self, data: bytes) -> str:
        return hashlib.sha256(self._fingerprint + b"\x00" + data).hexdigest()[:32]

    @contextmanager
    def _progress(self, total: int):
        from tqdm import tqdm

        show = self.settings.progress and total > 200_000  # about 250 chunks: worth a bar
        with tqdm(total=total, disable=not show, unit="B", unit_scale=True, desc="Indexing", file=sys.stderr) as bar:
            yield bar

    @contextmanager
    def _exclusive(self, *, wait: bool):
        """One indexing run per index at a time; a second one waits (or fails fast if asked)."""
        lock_dir = Path(self.settings.index_dir)
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / ".index.lock", "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise IndexBusyError(
                        f"Another indexing run is using {self.store.location}; try again when it ends."
                    ) from None
                print(f"Waiting for another indexing run on {self.store.location} to finish…", file=sys.stderr)
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _silent(_: IndexProgress) -> None:
    pass


def _under_any(source: str, paths: list[Path]) -> bool:
    for p in paths:
        root = source_name(p) if p.exists() else str(p.resolve())
        if source == root or source.startswith(root.rstrip("/") + "/"):
            return True
    return False
