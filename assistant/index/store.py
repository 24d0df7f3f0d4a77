"""The index: Chroma (embedded or a server) plus the keyword index and the record of indexed files.

The record of indexed files (source → content hash, chunk ids) lives in a second Chroma
collection, so an embedded store and a server behave the same and several machines can share
one server. It is written only after the chunks it lists are stored: a crash leaves chunks
without a record, which the next run finds and repairs. Every change goes through `Store.edit()`,
which bumps a generation stamp and brings this process's keyword index along; the stamp tells
every other process when its local keyword index is stale. The chunk collection's metadata
records what built the index (`IndexStamp`), and an index built otherwise is refused.

The store is the one owner of the Chroma client, the generation stamp and the keyword index, with
one lock: an edit's last step (the stamp, then the keyword index) and a query thread's catching up
with another process's changes (`sync_keyword`) never interleave, and while this process edits, a
query does not try to catch up with the edit's own changes. Reopening the embedded client (to see
another process's rows) waits for the Chroma calls in flight and holds new ones back (`_Gate`).
Its write methods (`write_files`, `remove_files`, `delete_chunks`, `bump_generation`) are public for
`Edit`, which calls them in the order crash safety needs; everything else changes the index through
`Store.edit()`, never by calling them directly.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from assistant.errors import IndexMismatchError, StoreError, first_line
from assistant.index.edit import Edit
from assistant.index.files import FileRecord, FileUpdate, GenerationRecord
from assistant.index.keyword import KeywordIndex
from assistant.schema import Chunk, IndexStamp, PageSpan, Section
from assistant.settings import Settings

_GENERATION_ID = "__generation__"
_PAGE = 1000  # rows per Chroma read when listing a whole collection


class _Gate:
    """Many uses of the Chroma client at once, or one reopening of it: never both.

    A use spans a whole store method (the collections it got and the calls it makes with them), and
    nests: a thread already inside one does not wait for a reopening that waits for it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._calls = 0
        self._closing = False
        self._depth = threading.local()

    @contextmanager
    def call(self) -> Iterator[None]:
        depth = getattr(self._depth, "n", 0)
        with self._cond:
            while self._closing and depth == 0:
                self._cond.wait()
            self._calls += 1
        self._depth.n = depth + 1
        try:
            yield
        finally:
            self._depth.n = depth
            with self._cond:
                self._calls -= 1
                self._cond.notify_all()

    @contextmanager
    def closing(self) -> Iterator[None]:
        if getattr(self._depth, "n", 0):
            raise RuntimeError("the Chroma client cannot be reopened from inside a use of it")
        with self._cond:
            while self._closing:
                self._cond.wait()
            self._closing = True
            while self._calls:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._closing = False
                self._cond.notify_all()


def _using(method):
    """A store method that uses the Chroma client: the client is not reopened while it runs."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._gate.call():
            return method(self, *args, **kwargs)

    return wrapper


class Store:
    """Where chunks, their vectors, their keywords and the file records live.

    Args:
        settings: Uses `index_dir`, `chroma_url` and `collection`.
        stamp: What this assistant builds the index with; an index built otherwise is refused, and
            one from before stamps (or from before a field of it) is checked against its stored
            vectors, then stamped. None opens any index unchecked.
    """

    def __init__(self, settings: Settings, stamp: IndexStamp | None = None):
        self.settings = settings
        self.stamp = stamp
        self.index_dir = Path(settings.index_dir)
        self.url = settings.chroma_url
        self._lock = threading.RLock()  # the stamp, the keyword index, edits opening and closing
        self._opening = threading.RLock()  # (re)creating the client: taken inside uses, never held waiting for one
        self._gate = _Gate()
        self._editing = 0  # edits open in this process (see `sync_keyword`)
        self._client = None
        self._chunks = None
        self._files = None
        self._checked_at = 0.0
        self._max_batch: int | None = None
        # The chunk collection's HNSW settings, used when this store creates it (Chroma fixes them then):
        # a bulk build may lower `ef_construction` (64 writes ~1.4x faster than Chroma's 100) at some recall.
        self.hnsw: dict = {"space": "cosine"}
        where = _slug(self.url) if self.url else "local"
        self.keyword = KeywordIndex(self.index_dir / "keyword" / f"{where}-{settings.collection}")

    @property
    def location(self) -> str:
        return self.url or str(self.index_dir)

    # -- connection ----------------------------------------------------------------------------
    def _connect(self):
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if self.url:
            parsed = urlparse(self.url if "://" in self.url else f"http://{self.url}")
            if not parsed.hostname:
                raise StoreError(f"Not a Chroma server URL: {self.url!r} (expected http://HOST:PORT)")
            try:
                return chromadb.HttpClient(
                    host=parsed.hostname,
                    port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                    ssl=parsed.scheme == "https",
                    settings=chroma_settings,
                )
            except Exception as exc:  # chromadb raises bare ValueError/ConnectError on a dead server
                raise StoreError(f"Cannot reach the Chroma server at {self.url}: {first_line(exc, 300)}") from None
        self.index_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(self.index_dir), settings=chroma_settings)

    def _collections(self):
        with self._opening:
            if self._chunks is None:
                try:
                    self._client = self._client or self._connect()
                    name = self.settings.collection
                    chunks = self._client.get_or_create_collection(
                        name,
                        configuration={"hnsw": dict(self.hnsw)},
                        metadata=asdict(self.stamp) if self.stamp else None,
                        embedding_function=None,
                    )
                    self._files = self._client.get_or_create_collection(f"{name}-files", embedding_function=None)
                    self._check_stamp(chunks)
                    self._chunks = chunks
                except StoreError:
                    raise
                except Exception as exc:
                    self._client = None
                    raise StoreError(f"Cannot open the index at {self.location}: {first_line(exc, 300)}") from None
            return self._chunks, self._files

    def _check_stamp(self, chunks) -> None:
        """Refuse an index built by another model or chunker; check, then stamp, one from before stamps."""
        if self.stamp is None:
            return
        expected = asdict(self.stamp)
        found = dict(chunks.metadata or {})
        legacy = {f.name: f.default for f in fields(IndexStamp) if f.default is not MISSING}
        found = {**{k: v for k, v in legacy.items() if "embedding_model" in found}, **found}  # older stamps
        mismatch = any(str(found[k]) != str(expected[k]) for k in IndexStamp.ENFORCED if k in found)
        if mismatch or not self._vectors_fit(chunks, found):
            built = IndexStamp(**{k: found.get(k, "?") for k in expected})
            remedy = (
                f"index into a new --collection, or delete the collection {self.settings.collection!r} on the server"
                if self.url
                else f"index into a new --index-dir, or delete the folder {self.index_dir}"
            )
            raise IndexMismatchError(
                f"The index at {self.location} was built with {built.describe()}, but this assistant uses "
                f"{self.stamp.describe()}; rebuild it: {remedy}."
            )
        if any(k not in found for k in expected):  # built before (part of) the stamp: checked, so it is ours
            self._call("Stamping the index", chunks.modify, metadata={**expected, **found})

    def _vectors_fit(self, chunks, found: dict) -> bool:
        """Whether an index without a recorded dimension holds vectors of this stamp's length (the one
        thing of what built it that the index itself still shows); an index with one, or empty, fits."""
        if "dimension" in found:
            return True
        got = self._call("Reading the index", chunks.get, limit=1, include=["embeddings"])
        vectors = got.get("embeddings")
        if vectors is None or len(vectors) == 0:
            return True
        found["dimension"] = len(vectors[0])
        return len(vectors[0]) == self.stamp.dimension

    def _call(self, what: str, fn, *args, **kwargs):
        """Run a Chroma call, turning connection faults into a StoreError that names the store."""
        try:
            with self._gate.call():  # the client is not reopened under a call in flight
                return fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:
            if self.url:
                with self._opening:  # reconnect on the next call: the server may come back
                    self._client = self._chunks = self._files = self._max_batch = None
            raise StoreError(f"{what} failed at {self.location}: {first_line(exc, 300)}") from None

    def _reopen(self) -> None:
        """Drop the embedded client so the next call reads what other processes wrote.

        An embedded Chroma keeps its vector segments in memory: rows another process added stay
        invisible to it (and looking them up by id fails) until the store is opened again.
        """
        with self._gate.closing(), self._opening:
            client, self._client, self._chunks, self._files, self._max_batch = self._client, None, None, None, None
            close = getattr(client, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    pass

    # -- file records --------------------------------------------------------------------------
    @_using
    def files(self) -> dict[str, FileRecord]:
        _, files = self._collections()
        records: dict[str, FileRecord] = {}
        for ids, metas in self._scan(files, include=["metadatas"]):
            for i, meta in zip(ids, metas, strict=True):
                if i == _GENERATION_ID or not meta:
                    continue
                records[i] = FileRecord(i, str(meta["hash"]), str(meta["chunk_ids"]))
        return records

    @_using
    def records(self) -> dict[str, str]:
        """Each indexed file's document record (JSON, see `ingest.records`), for the files that have one."""
        _, files = self._collections()
        out: dict[str, str] = {}
        for ids, metas in self._scan(files, include=["metadatas"]):
            for i, meta in zip(ids, metas, strict=True):
                if i != _GENERATION_ID and meta and meta.get("record"):
                    out[i] = str(meta["record"])
        return out

    @_using
    def write_files(self, updates: list[FileUpdate]) -> list[str]:
        """Write several files in a few batched calls (for `Edit`). Returns the chunk ids that were removed.

        Order matters for crash safety: chunks first, then the records that list them, then the
        chunks no longer listed. At every step each recorded chunk exists, so whatever a crash
        leaves is unlisted chunks, which `orphans` finds by a count and the next run deletes.
        """
        if not updates:
            return []
        chunks_col, files_col = self._collections()
        new = [c for u in updates for c in u.new]
        if new:
            vectors = np.concatenate(
                [np.asarray(u.vectors, dtype=np.float32).reshape(len(u.new), -1) for u in updates if u.new]
            )
            self._batched(
                "Storing chunks",
                chunks_col.upsert,
                ids=[c.id for c in new],
                embeddings=vectors,
                documents=[c.text for c in new],
                metadatas=[_chunk_meta(c) for c in new],
            )
        whole = [u for u in updates if not u.partial]
        stale: list[str] = []
        for u in whole:
            keep = set(u.chunk_ids)
            before = self._ids_of_source(u.source) if u.previous is None else u.previous
            stale += [i for i in before if i not in keep]
        self._upsert_records(files_col, whole)
        self._delete(chunks_col, stale)
        return stale

    def _upsert_records(self, files_col, updates: list[FileUpdate]) -> None:
        self._batched(
            "Recording files",
            files_col.upsert,
            ids=[u.source for u in updates],
            embeddings=[[1.0]] * len(updates),
            metadatas=[
                {"hash": u.content_hash, "chunk_ids": json.dumps(list(u.chunk_ids)), "chunks": len(u.chunk_ids)}
                | ({"record": u.record} if u.record else {})
                for u in updates
            ],
        )

    @_using
    def remove_files(self, sources: list[str], records: dict[str, FileRecord] | None = None) -> list[str]:
        """Forget files: their records first, then their chunks (see `write_files` on order)."""
        if not sources:
            return []
        chunks_col, files_col = self._collections()
        ids: list[str] = []
        for source in sources:
            record = records.get(source) if records is not None else None
            ids += list(record.chunk_ids) if record is not None else self._ids_of_source(source)
        self._batched("Removing files", files_col.delete, ids=list(sources))
        ids = list(dict.fromkeys(ids))
        self._delete(chunks_col, ids)
        return ids

    @_using
    def orphans(self, records: dict[str, FileRecord]) -> list[str]:
        """Chunks no file record lists: what a crash between writing chunks and records leaves.

        Every recorded chunk exists (see `write_files`), so equal counts mean no orphans and
        the common case costs one count instead of a scan.
        """
        listed = {i for r in records.values() for i in r.chunk_ids}
        if self.count() == len(listed):
            return []
        chunks_col, _ = self._collections()
        return [i for ids, _ in self._scan(chunks_col, include=[]) for i in ids if i not in listed]

    @_using
    def delete_chunks(self, ids: list[str]) -> None:
        chunks_col, _ = self._collections()
        self._delete(chunks_col, ids)

    @_using
    def _ids_of_source(self, source: str) -> list[str]:
        chunks_col, _ = self._collections()
        got = self._call("Reading the index", chunks_col.get, where={"source": source}, include=[])
        return list(got["ids"])

    def _delete(self, collection, ids: list[str]) -> None:
        self._batched("Deleting chunks", collection.delete, ids=ids)

    def _batched(self, what: str, fn, **columns) -> None:
        """Call `fn` on aligned slices of `columns`, at most the server's batch size at a time."""
        rows = len(columns["ids"])
        batch = self._batch_size()
        for lo in range(0, rows, batch):
            self._call(what, fn, **{name: values[lo : lo + batch] for name, values in columns.items()})

    def _batch_size(self) -> int:
        """Rows per write: the server's limit, asked once per connection."""
        if self._max_batch is None:
            client = self._client
            try:
                limit = self._call("Asking the batch size", client.get_max_batch_size) if client else 1000
            except StoreError:
                return 1000
            self._max_batch = max(1, min(5000, int(limit)))
        return self._max_batch

    def _scan(self, collection, include: list[str]) -> Iterable[tuple[list[str], list]]:
        offset = 0
        while True:
            got = self._call("Reading the index", collection.get, include=include, limit=_PAGE, offset=offset)
            ids = list(got["ids"])
            if not ids:
                return
            yield ids, (got.get("metadatas") if "metadatas" in include else got.get("documents")) or [None] * len(ids)
            offset += len(ids)

    # -- changes, generation and keyword index -------------------------------------------------
    @contextmanager
    def edit(self) -> Iterator[Edit]:
        """Change the index: every write and removal goes through an `Edit`, which keeps the
        generation stamp and the keyword index in step (see `Edit`). One process at a time should
        edit an index; `Indexer` holds the lock.

        Opening and closing the edit hold the store's lock; the writes between them do not (queries
        go on meanwhile). An edit that raises is not closed: its first change left the generation
        stamp new, so every keyword index catches up on its next use.
        """
        with self._lock:
            edit = Edit(self)
            self._editing += 1
        try:
            yield edit
            with self._lock:
                edit.close()
        finally:
            with self._lock:
                self._editing -= 1

    @_using
    def generation(self) -> str | None:
        return self.generation_record().value

    @_using
    def generation_record(self) -> GenerationRecord:
        _, files_col = self._collections()
        got = self._call("Reading the index", files_col.get, ids=[_GENERATION_ID], include=["metadatas"])
        if not got["ids"]:
            return GenerationRecord(None, False)
        meta = got["metadatas"][0] or {}
        return GenerationRecord(str(meta["value"]), bool(meta.get("clean", False)))

    @_using
    def bump_generation(self, *, clean: bool) -> str:
        """A new stamp; `clean` says the edit that sets it closed (so no chunk lacks a record)."""
        _, files_col = self._collections()
        value = uuid.uuid4().hex
        self._call(
            "Recording a change",
            files_col.upsert,
            ids=[_GENERATION_ID],
            embeddings=[[1.0]],
            metadatas=[{"value": value, "clean": clean}],
        )
        return value

    def sync_keyword(self, *, max_age_s: float = 1.0) -> None:
        """Make the local keyword index match the store: cheap when nothing changed (one small read
        at most every `max_age_s`), a reload when another process on this machine saved the new
        index, and a rebuild from the store's texts only when this cache never saw the change."""
        now = time.monotonic()
        if now - self._checked_at < max_age_s or self._editing:
            return  # an edit of this process brings the keyword index along when it closes
        with self._lock:
            if not self._editing:
                self.follow()
            self._checked_at = time.monotonic()

    def follow(self) -> None:
        """Catch up with the store's generation (under the lock): reopen, reload or rebuild."""
        with self._lock:
            current = self.generation()
            if current is None or current == self.keyword.generation:
                return
            if not self.url:
                self._reopen()  # another process wrote the embedded store: this client's view is stale
            self.keyword.reload()
            if current != self.keyword.generation:
                ids, texts = self._listed_texts()
                self.keyword.replace_all(ids, texts, current)

    @_using
    def _listed_texts(self) -> tuple[list[str], list[str]]:
        """The ids and texts of every chunk a file record lists, read by id a page at a time.

        Not by offset: Chroma pages by offset in time that grows with the offset (at 875,000 chunks a
        page took 0.3 s at the start and 4 s past 400,000: a 45-minute scan), by id in constant time.
        Chunks no record lists are what an interrupted run left; the next edit deletes them.
        """
        chunks_col, _ = self._collections()
        listed = [i for record in self.files().values() for i in record.chunk_ids]
        ids: list[str] = []
        texts: list[str] = []
        for lo in range(0, len(listed), _PAGE):
            got = self._call("Reading the index", chunks_col.get, ids=listed[lo : lo + _PAGE], include=["documents"])
            ids.extend(got["ids"])
            texts.extend(d or "" for d in got["documents"])
        return ids, texts

    # -- queries -------------------------------------------------------------------------------
    @_using
    def count(self) -> int:
        chunks_col, _ = self._collections()
        return int(self._call("Counting chunks", chunks_col.count))

    def dense_search(self, vector: np.ndarray, n: int, sources: list[str] | None = None) -> list[tuple[Chunk, float]]:
        """Nearest chunks by cosine similarity (1 - distance), best first (fewer if the index is small);
        with `sources`, only chunks of those documents (filtered inside Chroma)."""
        self.sync_keyword()  # also reopens an embedded store that another process changed
        return self._nearest(vector, n, sources)

    @_using
    def _nearest(self, vector: np.ndarray, n: int, sources: list[str] | None) -> list[tuple[Chunk, float]]:
        chunks_col, _ = self._collections()
        if n <= 0:
            return []
        got = self._call(
            "Searching the index",
            chunks_col.query,
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=n,
            include=["documents", "metadatas", "distances"],
            **({"where": _in_sources(sources)} if sources is not None else {}),
        )
        return [
            (_chunk(i, d, m), 1.0 - float(dist))
            for i, d, m, dist in zip(
                got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0], strict=True
            )
        ]

    def keyword_search(self, query: str, n: int, sources: list[str] | None = None) -> list[tuple[str, float]]:
        """Top-n (chunk id, BM25 score) pairs, best first, from a keyword index kept in step with the store;
        with `sources`, only chunks of those documents are scored."""
        self.sync_keyword()
        if sources is None:
            return self.keyword.search(query, n)
        allowed = {i for ids in self._chunk_ids_of(sources).values() for i in ids}
        return self.keyword.search(query, n, allowed=allowed)

    @_using
    def chunk_at(self, source: str, start: int, end: int) -> Chunk | None:
        """The stored chunk of `source` that holds the range start..end (or most of it), if any.

        Looked up through the file's record (its chunk ids, read by id): a metadata filter over every
        chunk costs a third of a second at 100,000 chunks.
        """
        ids = self._chunk_ids_of([source]).get(source, ())
        if not ids:
            return None
        chunks_col, _ = self._collections()
        got = self._call("Reading the index", chunks_col.get, ids=list(ids), include=["metadatas"])
        spans = [
            (i, int(m["start"]), int(m["end"]))
            for i, m in zip(got["ids"], got["metadatas"], strict=True)
            if m and int(m["start"]) <= start < int(m["end"])
        ]
        if not spans:
            return None
        best = max(spans, key=lambda t: (min(t[2], end) - start, -t[1]))[0]
        got = self._call("Reading the index", chunks_col.get, ids=[best], include=["documents", "metadatas"])
        found = [_chunk(i, d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)]
        return found[0] if found else None

    @_using
    def _chunk_ids_of(self, sources: list[str]) -> dict[str, tuple[str, ...]]:
        """The chunk ids each of `sources` lists in its file record (read by id, not by scanning)."""
        _, files = self._collections()
        got = self._call("Reading the index", files.get, ids=list(sources), include=["metadatas"])
        return {
            i: tuple(json.loads(str(m["chunk_ids"])))
            for i, m in zip(got["ids"], got["metadatas"], strict=True)
            if i != _GENERATION_ID and m and "chunk_ids" in m
        }

    @_using
    def get_with_vectors(self, ids: list[str]) -> dict[str, tuple[Chunk, np.ndarray]]:
        """Chunks and their stored vectors in one read."""
        if not ids:
            return {}
        chunks_col, _ = self._collections()
        got = self._call("Reading the index", chunks_col.get, ids=ids, include=["documents", "metadatas", "embeddings"])
        return {
            i: (_chunk(i, d, m), np.asarray(v, dtype=np.float32))
            for i, d, m, v in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True)
        }


def _in_sources(sources: list[str]) -> dict:
    return {"source": sources[0]} if len(sources) == 1 else {"source": {"$in": list(sources)}}


def _chunk_meta(c: Chunk) -> dict:
    meta = {"source": c.source, "start": c.start, "end": c.end}
    if c.page is not None:
        meta["page"] = c.page
    if c.ocr:
        meta["ocr"] = True
    if c.pages:  # where a passage crosses pages: "page:start:end;…" (Chroma keeps scalars only)
        meta["pages"] = ";".join(f"{p.page}:{p.start}:{p.end}" for p in c.pages)
    if c.sections:
        meta["sections"] = json.dumps([[x.path, x.start, x.end] for x in c.sections], ensure_ascii=False)
    return meta


def _spans(meta: dict) -> tuple[tuple[PageSpan, ...], tuple[Section, ...]]:
    """A passage's page spans and heading paths from its metadata (none in an index from before them)."""
    pages: tuple[PageSpan, ...] = ()
    sections: tuple[Section, ...] = ()
    try:
        if raw := meta.get("pages"):
            pages = tuple(PageSpan(*(int(v) for v in part.split(":"))) for part in str(raw).split(";"))
        if raw := meta.get("sections"):
            sections = tuple(Section(str(a), int(b), int(c)) for a, b, c in json.loads(raw))
    except (ValueError, TypeError):
        pass  # a malformed record: the passage keeps its start page only
    return pages, sections


def _chunk(chunk_id: str, text: str | None, meta: dict | None) -> Chunk:
    meta = meta or {}
    page = meta.get("page")
    pages, sections = _spans(meta)
    return Chunk(
        id=chunk_id,
        source=str(meta.get("source", "")),
        text=text or "",
        start=int(meta.get("start", 0)),
        end=int(meta.get("end", 0)),
        page=int(page) if page is not None else None,
        ocr=bool(meta.get("ocr", False)),
        pages=pages,
        sections=sections,
    )


def _slug(url: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", url).strip("_")
