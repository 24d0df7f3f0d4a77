"""Incremental indexing: only new or changed files are chunked and embedded.

A file is identified by its resolved path and judged unchanged by the hash of its bytes (and of
the chunking settings), so a re-run over the same folder loads, chunks and embeds nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .chunking import Chunker
from .embedding import Embedder
from .loading import check_file, iter_files, load_file, source_name
from .schema import Chunk, Document, IndexReport, Skipped
from .settings import Settings
from .store import FileRecord, FileUpdate, Store


class IndexBusyError(RuntimeError):
    pass


class Indexer:
    """Brings the store in line with a set of files and folders.

    Args:
        store: Where chunks and file records go.
        embedder: Encodes chunk texts.
        settings: Chunk size, file size limit, progress bars.
    """

    group_chunks = 2048  # about this many chunks are embedded and stored per step: bounds memory and lost work

    def __init__(self, store: Store, embedder: Embedder, settings: Settings):
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.chunker = Chunker(embedder.count_tokens, settings.chunk_tokens, settings.chunk_overlap_tokens)
        self._fingerprint = f"chunker:{settings.chunk_tokens}:{settings.chunk_overlap_tokens}:v1".encode()

    def index(self, paths: Iterable[str | Path], *, wait: bool = True) -> IndexReport:
        """Index files and folders; files gone from a given folder are removed from the index."""
        paths = [Path(p) for p in paths]
        with self._exclusive(wait=wait):
            return self._index(paths)

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
                    todo.append((doc, digest, old))
                    report.updated += old is not None
                    report.added += old is None
            self._write(todo, records, report)
            return report

    # -- the run ---------------------------------------------------------------------------------
    def _index(self, paths: list[Path]) -> IndexReport:
        report = IndexReport()
        records = self.store.files()
        max_bytes = int(self.settings.max_file_mb * 1024 * 1024)
        seen: set[str] = set()
        todo: list[tuple[Document, str, FileRecord | None]] = []
        for path in iter_files(paths):
            skipped = check_file(path, max_bytes=max_bytes)
            source = source_name(path)
            if path.exists():
                seen.add(source)  # a file that is there but unusable keeps its earlier chunks
            if skipped is not None:
                report.skipped.append(skipped)
                continue
            try:
                digest = self._hash(path.read_bytes())
            except OSError as exc:
                report.skipped.append(Skipped(source, f"cannot read file ({exc.strerror or exc})"))
                continue
            old = records.get(source)
            if old and old.content_hash == digest:
                report.unchanged += 1
                continue
            loaded = load_file(path, max_bytes=max_bytes, max_chars=self.settings.max_chars_per_file)
            if isinstance(loaded, Skipped):
                report.skipped.append(loaded)
                continue
            todo.append((loaded, digest, old))
            report.warnings += [Skipped(source, w) for w in loaded.warnings]
            report.updated += old is not None
            report.added += old is None
        gone = [s for s in records if s not in seen and _under_any(s, paths)]
        self._write(todo, records, report, gone=gone)
        return report

    def _write(self, todo, records, report: IndexReport, gone: list[str] = ()) -> None:
        store = self.store
        changed = bool(todo or gone)
        generation = store.generation()
        in_sync = generation is not None and store.keyword.generation == generation
        if changed:
            store.bump_generation()  # any crash from here on leaves every keyword index stale
        removed_ids = store.remove_files(list(gone), records)
        report.removed += len(gone)
        added: list[Chunk] = []
        with self._progress(sum(len(d.text) for d, _, _ in todo)) as bar:
            for group in self._groups(todo):
                pending = [(doc, digest, self.chunker.split(doc), old) for doc, digest, old in group]
                new = [
                    c for _, _, chunks, old in pending for c in chunks if not old or c.id not in old.chunk_ids
                ]
                new = list({c.id: c for c in new}.values())
                vectors = self.embedder.encode([c.text for c in new])
                row = {c.id: i for i, c in enumerate(new)}
                updates = []
                for doc, digest, chunks, old in pending:
                    mine = [c for c in chunks if c.id in row]
                    updates.append(
                        FileUpdate(
                            doc.source,
                            digest,
                            list(dict.fromkeys(c.id for c in chunks)),
                            mine,
                            vectors[[row[c.id] for c in mine]] if mine else vectors[:0],
                            previous=old.chunk_ids if old else (),
                        )
                    )
                removed_ids += store.write_files(updates)
                bar.update(sum(len(doc.text) for doc, *_ in pending))
                report.embedded += len(new)
                added += new
        orphans = store.orphans(store.files()) if changed or not in_sync else []
        if orphans:
            store.delete_chunks(orphans)
            removed_ids += orphans
            changed = True
        if changed or not in_sync:
            generation = store.bump_generation()
            if in_sync:
                store.keyword.update([c.id for c in added], [c.text for c in added], removed_ids)
                store.keyword.commit(generation)
            else:
                store.sync_keyword(max_age_s=0)
        report.chunks = store.count()

    def _groups(self, todo) -> Iterator[list]:
        group, size = [], 0
        for item in todo:
            group.append(item)
            size += max(1, len(item[0].text) // 800)
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
        with tqdm(
            total=total, disable=not show, unit="B", unit_scale=True, desc="Indexing", file=sys.stderr
        ) as bar:
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


def _under_any(source: str, paths: list[Path]) -> bool:
    for p in paths:
        root = source_name(p) if p.exists() else str(p.resolve())
        if source == root or source.startswith(root.rstrip("/") + "/"):
            return True
    return False
