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
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from assistant.embedding import Embedder
from assistant.errors import IndexBusyError
from assistant.index.files import FileRecord, FileUpdate
from assistant.index.store import Store
from assistant.ingest.chunking import CHUNKER_VERSION, Chunker, Passage
from assistant.ingest.formats.ocr import OcrOptions
from assistant.ingest.formats.pdf.glyphs import PAGE_READ
from assistant.ingest.loading import check_file, iter_files, load_file, source_name
from assistant.ingest.records import RECORD_VERSION, RecordBuilder
from assistant.ingest.worker import ParseBounds
from assistant.schema import Chunk, Document, IndexReport, Skipped
from assistant.settings import MB, Settings

__all__ = ["IndexBusyError", "Indexer"]


@dataclass
class PendingFile:
    """A new or changed document on its way into the index.

    Args:
        document: The loaded text.
        digest: Hash of its bytes and the chunking settings (what the file record will hold).
        previous: Its record in the index, if it was indexed before.
        passages: Its chunks (with their word pieces), once cut.
        record: Its document record as JSON; None until built from the document when it is cut
            (a file's record is built as it loads, from its bytes).
    """

    document: Document
    digest: str
    previous: FileRecord | None
    passages: list[Passage] = field(default_factory=list)
    record: str | None = None

    @property
    def chunks(self) -> list[Chunk]:
        return [p.chunk for p in self.passages]


@dataclass
class _Embedding:
    """A group on its way through the model: its new passages (with their file's place in the group)
    and the futures of their vectors, a slice each."""

    group: list[PendingFile]
    work: list[tuple[int, Passage]]
    slices: list[Future]

    def cancel(self) -> None:
        for vectors in self.slices:
            vectors.cancel()


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
    first_group_chunks = 16
    slice_passages = 64  # embedded, then handed to the writer, at a time (a long file's too)
    workers_from = 128  # chunks (estimated) from which a run embeds in worker processes (they take ~1 s to start)

    def __init__(self, store: Store, embedder: Embedder, settings: Settings):
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.chunker = Chunker(
            embedder.count_tokens,
            settings.chunk_tokens,
            settings.chunk_overlap_tokens,
            limit=embedder.max_seq_length,
            word_pieces=embedder.word_pieces if embedder.joins_word_pieces else None,  # tokenised once
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
                    todo.append(PendingFile(doc, digest, old))  # its record is built as it is cut
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
        roots = [source_name(p) if p.exists() else str(p.resolve()) for p in paths]  # once, not per record
        gone = [s for s in records if s not in seen and _under_any(s, roots)]
        self._write(todo, records, report, gone=gone)
        return report

    def _write(
        self, todo: list[PendingFile], records: dict[str, FileRecord], report: IndexReport, gone: list[str] = ()
    ) -> None:
        """Remove what is gone, then cut, embed and store the pending files a group at a time.

        Three stages overlap so that the model, the bottleneck, never waits for the others: a
        group's new passages are queued to the model (`Embedder.submit`) as soon as it is cut,
        then the group before is stored here as its vectors come (a slice at a time, so a long
        file's first passages are stored while its last are embedded), its writes done on the
        "index-write" thread, and the next group is cut while this one embeds. A long run embeds
        in worker processes (`Embedder.workers`): a Chroma write holds the GIL, which would
        stall encoding threads of this process. Writes stay one at a time and in order, so the
        crash-safety order of `Store.write_files` holds."""
        long_run = sum(map(_estimated_chunks, todo)) >= self.workers_from
        with self.embedder.workers() if long_run else nullcontext():
            self._write_groups(todo, records, report, gone)
        report.chunks = self.store.count()

    def _write_groups(
        self, todo: list[PendingFile], records: dict[str, FileRecord], report: IndexReport, gone: list[str]
    ) -> None:
        with self.store.edit() as edit, ThreadPoolExecutor(1, thread_name_prefix="index-write") as writer:
            edit.remove(list(gone), records)
            report.removed += len(gone)
            with self._progress(sum(len(p.document.text) for p in todo)) as bar:
                writes = _Writes(writer, edit.write, bar.update)
                queued: list[_Embedding] = []  # submitted to the model, not yet stored
                try:
                    for group in self._groups(todo):
                        self._cut(group)
                        queued.append(self._submit(group))  # behind the group before, which is stored next
                        if len(queued) == 2:
                            self._store(queued[0], report, writes)
                            queued.pop(0)
                    while queued:
                        self._store(queued[0], report, writes)
                        queued.pop(0)
                finally:
                    for embedding in queued:  # an error stops the run: what is still queued is not embedded
                        embedding.cancel()
                writes.drain()

    def _cut(self, group: list[PendingFile]) -> None:
        """Cut a group's files into passages, and build the records not built as they loaded."""
        for pending in group:
            self._tell(IndexProgress(Path(pending.document.source).name, "cutting passages"))
            pending.passages = self.chunker.cut(pending.document)
            if pending.record is None:
                pending.record = self.records.build(pending.document).to_json()

    def _submit(self, group: list[PendingFile]) -> _Embedding:
        """Queue the passages a group's files did not have before to the model, `slice_passages` at a
        time (their word pieces go along, so the model does not tokenise them again)."""
        work: list[tuple[int, Passage]] = []  # (the file's place in the group, a new passage), file by file
        seen: set[str] = set()
        for k, pending in enumerate(group):
            old = set(pending.previous.chunk_ids) if pending.previous else set()
            for passage in pending.passages:
                if passage.chunk.id not in old and passage.chunk.id not in seen:
                    seen.add(passage.chunk.id)
                    work.append((k, passage))
        slices = []
        for at in range(0, max(1, len(work)), self.slice_passages):  # one slice, empty, writes the records
            part = work[at : at + self.slice_passages]
            texts, pieces = [p.chunk.text for _, p in part], [p.word_pieces for _, p in part]
            slices.append(self.embedder.submit(texts, word_pieces=pieces))
        return _Embedding(group, work, slices)

    def _store(self, embedding: _Embedding, report: IndexReport, writes: _Writes) -> None:
        """Hand a group's slices to the writer as their vectors come: a file is written whole with the
        slice its last new chunk is in, and the chunks of a file that goes on into the next slice
        are stored ahead of it (`FileUpdate.partial`)."""
        group, work = embedding.group, embedding.work
        ends = {k: at + 1 for at, (k, _) in enumerate(work)}  # where each file's new chunks end
        chunk_ids = [list(dict.fromkeys(c.id for c in pending.chunks)) for pending in group]
        name = Path(group[0].document.source).name if len(group) == 1 else f"{len(group)} files"
        written: set[int] = set()
        for n, vectors_coming in enumerate(embedding.slices):
            at = n * self.slice_passages
            part = work[at : at + self.slice_passages]
            self._tell(IndexProgress(name, "embedding passages", at, len(work)))
            vectors = vectors_coming.result()
            report.embedded += len(part)
            rows: dict[int, list[int]] = {}
            for r, (k, _) in enumerate(part):
                rows.setdefault(k, []).append(r)
            updates, chars = [], 0
            for k, pending in enumerate(group):
                whole = ends.get(k, 0) <= at + len(part)  # all its new chunks are embedded by now
                if k in written or not (whole or k in rows):
                    continue
                mine = rows.get(k, [])
                updates.append(
                    FileUpdate(
                        pending.document.source,
                        pending.digest,
                        chunk_ids[k],
                        [part[r][1].chunk for r in mine],
                        vectors[mine],
                        previous=pending.previous.chunk_ids if pending.previous else (),
                        record=(pending.record or "") if whole else "",
                        partial=not whole,
                    )
                )
                if whole:
                    written.add(k)
                    chars += len(pending.document.text)
            self._tell(IndexProgress(name, "saving", at + len(part), len(work)))
            writes.put(updates, chars)

    def _groups(self, todo: list[PendingFile]) -> Iterator[list[PendingFile]]:
        """The files in groups of about `group_chunks` chunks (estimated from their length), smaller at
        the start, so the model starts early, and at the end, so the last write (which no embedding
        overlaps) is short: each group is at most as large as what came before it and half what is left."""
        sizes = [_estimated_chunks(p) for p in todo]
        left, done = sum(sizes), 0
        group, size = [], 0
        for item, n in zip(todo, sizes, strict=True):
            group.append(item)
            size += n
            if size >= min(self.group_chunks, max(self.first_group_chunks, min(done, (left - done) // 2))):
                yield group
                done += size
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


class _Writes:
    """The writer thread's queue: one write at a time, in order, and the caller waits for the write
    before to end (so at most one waits, and its error stops the run there)."""

    def __init__(self, writer: ThreadPoolExecutor, write: Callable[[list[FileUpdate]], object], done: Callable):
        self.writer = writer
        self.write = write
        self.done = done  # told the characters of the files each write stored whole
        self._last: Future | None = None

    def put(self, updates: list[FileUpdate], chars: int) -> None:
        self.drain()
        self._last = self.writer.submit(self.write, updates)
        self._last.add_done_callback(lambda f: f.exception() is None and self.done(chars))

    def drain(self) -> None:
        if self._last is not None:
            self._last.result()


def _estimated_chunks(pending: PendingFile) -> int:
    """About how many chunks a file will be cut into, before it is cut (one per ~800 characters)."""
    return max(1, len(pending.document.text) // 800)


def _silent(_: IndexProgress) -> None:
    pass


def _under_any(source: str, roots: list[str]) -> bool:
    return any(source == root or source.startswith(root.rstrip("/") + "/") for root in roots)
