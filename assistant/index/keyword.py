"""A BM25 keyword index kept beside the Chroma collection, in segments that scale to a million passages.

Chroma holds the vectors; exact terms (names, numbers, rare words) are what dense MiniLM
vectors miss, so a stemmed BM25 index over the same chunks is fused with them at query time.

A change must not cost a rebuild of everything (minutes at a million passages), and opening the
index must not parse everything (seconds). So the index is a big read-only *base* segment, a
small *delta* segment with the passages added since, and the set of base rows deleted since; all
arrays are saved as `.npy` files and memory-mapped, so a fresh process reads only the pages a
question touches. A commit rewrites the delta (and the deletion set) only; when they pass
`merge_fraction` of the base, or the base is small, they are merged into a new base. Segments
keep term frequencies and passage lengths (not precomputed scores), so scores use statistics of
the whole index: the average length is exact; document frequencies (IDF) still count the base
rows deleted since the last merge (and the passage count does too, consistently) until that merge,
which is exact again. No token lists are kept: a merge reads the segments' own postings.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.terms import tokenize, tokenize_many

K1, B = 1.5, 0.75  # bm25s's defaults ("lucene" variant), which this index used to be built with


@dataclass(frozen=True)
class _Columns:
    """A segment's contents in memory: passages sorted by id, postings sorted by (term, row)."""

    ids: np.ndarray  # bytes (numpy "S"), sorted
    lengths: np.ndarray  # int32 tokens per passage
    terms: list[str]  # sorted vocabulary
    term: np.ndarray  # int32, index into `terms`
    row: np.ndarray  # int32, index into `ids`
    tf: np.ndarray  # int32 occurrences of the term in the passage

    @classmethod
    def empty(cls) -> _Columns:
        z = np.zeros(0, dtype=np.int32)
        return cls(np.zeros(0, dtype="S1"), z, [], z, z, z)

    @classmethod
    def from_tokens(cls, ids: list[str], token_lists: Iterable[list[str]]) -> _Columns:
        """Columns of passages given in any order; each token list is dropped once counted (a million
        passages' token lists at once would take gigabytes)."""
        if not ids:
            return cls.empty()
        vocab: dict[str, int] = {}
        per_doc = [np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokens), np.int32) for tokens in token_lists]
        counts = np.array([len(a) for a in per_doc], dtype=np.int64)
        term = np.concatenate(per_doc)
        del per_doc
        names = _as_bytes(ids)
        order = np.argsort(names, kind="stable")
        new_row = np.empty(len(ids), dtype=np.int64)
        new_row[order] = np.arange(len(ids))
        terms = sorted(vocab)
        rank = np.empty(len(vocab), dtype=np.int64)
        rank[[vocab[t] for t in terms]] = np.arange(len(terms))
        keys, tf = np.unique(rank[term] * len(ids) + np.repeat(new_row, counts), return_counts=True)
        return cls(
            names[order],
            np.maximum(counts, 1).astype(np.int32)[order],  # bm25s counts an empty text as one token
            terms,
            (keys // len(ids)).astype(np.int32),
            (keys % len(ids)).astype(np.int32),
            tf.astype(np.int32),
        )

    def merge(self, other: _Columns) -> _Columns:
        """Both segments' passages in one (their ids are disjoint)."""
        if not len(other.ids):
            return self
        if not len(self.ids):
            return other
        width = max(self.ids.dtype.itemsize, other.ids.dtype.itemsize)
        ids = np.concatenate([self.ids.astype(f"S{width}"), other.ids.astype(f"S{width}")])
        order = np.argsort(ids, kind="stable")
        new_row = np.empty(len(ids), dtype=np.int64)
        new_row[order] = np.arange(len(ids))
        terms = sorted(set(self.terms) | set(other.terms))
        where = {t: i for i, t in enumerate(terms)}
        term = np.concatenate(
            [np.array([where[t] for t in c.terms], dtype=np.int64)[c.term] for c in (self, other) if len(c.term)]
        )
        row = new_row[np.concatenate([self.row, other.row.astype(np.int64) + len(self.ids)])]
        tf = np.concatenate([self.tf, other.tf])
        sort = np.argsort(term * len(ids) + row, kind="stable")
        lengths = np.concatenate([self.lengths, other.lengths])[order]
        return _Columns(ids[order], lengths, terms, term[sort].astype(np.int32), row[sort].astype(np.int32), tf[sort])


class _Segment:
    """One saved segment, memory-mapped: ids, lengths, vocabulary and postings (CSC by term)."""

    def __init__(self, folder: Path):
        self.folder = folder

        def load(name: str) -> np.ndarray:
            return np.load(folder / f"{name}.npy", mmap_mode="r")

        self.ids, self.lengths, self.indptr, self.rows, self.tf = (
            load(n) for n in ("ids", "lengths", "indptr", "rows", "tf")
        )
        self.blob, self.offsets = load("terms"), load("term_offsets")
        self.total_length = int(json.loads((folder / "meta.json").read_text())["total_length"])

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def write(folder: Path, c: _Columns) -> None:
        folder.mkdir(parents=True)
        encoded = [t.encode() for t in c.terms]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        indptr = np.zeros(len(c.terms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(c.term, minlength=len(c.terms)), out=indptr[1:])
        arrays = {
            "ids": c.ids,
            "lengths": c.lengths,
            "indptr": indptr,
            "rows": c.row,
            "tf": c.tf,
            "terms": np.frombuffer(b"".join(encoded), dtype=np.uint8),
            "term_offsets": offsets,
        }
        for name, array in arrays.items():
            np.save(folder / f"{name}.npy", array)
        (folder / "meta.json").write_text(json.dumps({"total_length": int(c.lengths.sum()), "docs": len(c.ids)}))

    def columns(self, keep: np.ndarray | None = None) -> _Columns:
        """The segment's contents, without the rows `keep` marks False (read whole: a merge)."""
        terms = [bytes(self.blob[a:b]).decode() for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]
        term = np.repeat(np.arange(len(terms), dtype=np.int32), np.diff(self.indptr))
        row, tf, ids, lengths = np.asarray(self.rows), np.asarray(self.tf), np.asarray(self.ids), self.lengths
        if keep is not None and not keep.all():
            new_row = np.cumsum(keep) - 1
            live = keep[row]
            term, row, tf = term[live], new_row[row[live]].astype(np.int32), tf[live]
            ids, lengths = ids[keep], lengths[keep]
        return _Columns(ids, np.asarray(lengths), terms, term, row, tf)

    def term_id(self, term: str) -> int | None:
        """Binary search of the sorted vocabulary (UTF-8 byte order is code point order)."""
        key = term.encode()
        lo, hi = 0, len(self.offsets) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if bytes(self.blob[self.offsets[mid] : self.offsets[mid + 1]]) < key:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self.offsets) - 1 and bytes(self.blob[self.offsets[lo] : self.offsets[lo + 1]]) == key:
            return lo
        return None

    def postings(self, term_id: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = int(self.indptr[term_id]), int(self.indptr[term_id + 1])
        return self.rows[lo:hi], self.tf[lo:hi]

    def rows_of(self, ids: list[str]) -> np.ndarray:
        """Rows of those of `ids` that this segment holds."""
        if not ids or not len(self.ids):
            return np.zeros(0, dtype=np.int64)
        wanted = _as_bytes(ids)
        at = np.searchsorted(self.ids, wanted)
        inside = at < len(self.ids)
        at, wanted = at[inside], wanted[inside]
        return at[self.ids[at] == wanted]


def _as_bytes(ids: list[str]) -> np.ndarray:
    encoded = [i.encode() for i in ids]
    return np.array(encoded, dtype=f"S{max(1, max((len(e) for e in encoded), default=1))}")


@dataclass
class _State:
    """What `state.json` names: the segments in use, the deleted base rows, the generation."""

    generation: str | None = None
    base: _Segment | None = None
    delta: _Segment | None = None
    deleted: np.ndarray | None = None  # sorted base rows

    def live(self) -> int:
        dead = 0 if self.deleted is None else len(self.deleted)
        return (len(self.base) if self.base else 0) - dead + (len(self.delta) if self.delta else 0)


class KeywordIndex:
    """BM25 over chunk ids, persisted in `folder` as segments (see the module's docstring).

    Args:
        folder: Where the segments, the deletion set and the generation stamp live.
        merge_fraction: Merge the delta and the deletions into the base when they pass this share of it.
        min_base: Below this many passages every commit rebuilds one base (exact statistics; cheap).
    """

    def __init__(self, folder: Path, *, merge_fraction: float = 0.05, min_base: int = 20_000):
        self.folder = Path(folder)
        self.merge_fraction = merge_fraction
        self.min_base = min_base
        self._state: _State | None = None
        self._adds: dict[str, list[str]] = {}
        self._removes: set[str] = set()
        self._lock = threading.RLock()

    # -- persistence -------------------------------------------------------------------------
    @property
    def generation(self) -> str | None:
        return self._load().generation

    def reload(self) -> None:
        """Forget what is in memory, so the next use reads the folder (another process may have saved it)."""
        with self._lock:
            self._state = None
            self._adds, self._removes = {}, set()

    def _load(self) -> _State:
        with self._lock:
            if self._state is None:
                try:
                    saved = json.loads((self.folder / "state.json").read_text())
                    self._state = _State(
                        saved.get("generation"),
                        _Segment(self.folder / saved["base"]) if saved.get("base") else None,
                        _Segment(self.folder / saved["delta"]) if saved.get("delta") else None,
                        np.load(self.folder / saved["deleted"]) if saved.get("deleted") else None,
                    )
                except (OSError, ValueError, KeyError):
                    self._state = _State()  # none saved, or half of one: stale, so the store rebuilds it
            return self._state

    # -- updates -------------------------------------------------------------------------------
    def replace_all(self, ids: list[str], texts: list[str], generation: str) -> None:
        """Rebuild from the store's full contents (first use, or another process changed it)."""
        with self._lock:
            self._adds, self._removes = {}, set()
            self._save(_Columns.from_tokens(ids, (tokenize(t) for t in texts)), None, None, generation)

    def update(self, add_ids: list[str], add_texts: list[str], remove_ids: list[str]) -> None:
        """Note changes (tokenised now); `commit` saves them."""
        with self._lock:
            for i in remove_ids:
                self._adds.pop(i, None)
                self._removes.add(i)
            self._adds.update(zip(add_ids, tokenize_many(add_texts), strict=True))

    def commit(self, generation: str) -> None:
        """Save the noted changes: a new delta and deletion set, or a merged base when they grew."""
        with self._lock:
            state = self._load()
            gone = sorted(self._removes | set(self._adds))
            added = _Columns.from_tokens(list(self._adds), list(self._adds.values()))
            delta = added
            if state.delta is not None:
                keep = np.ones(len(state.delta), dtype=bool)
                keep[state.delta.rows_of(gone)] = False
                delta = state.delta.columns(keep).merge(added)
            deleted = state.deleted if state.deleted is not None else np.zeros(0, dtype=np.int64)
            if state.base is not None:
                deleted = np.union1d(deleted, state.base.rows_of(gone))
            base_n = len(state.base) if state.base else 0
            if base_n < self.min_base or len(delta.ids) + len(deleted) > self.merge_fraction * base_n:
                keep = np.ones(base_n, dtype=bool)
                keep[deleted] = False
                merged = state.base.columns(keep).merge(delta) if state.base else delta
                self._save(merged, None, None, generation)
            else:
                self._save(None, delta if len(delta.ids) else None, deleted if len(deleted) else None, generation)
            self._adds, self._removes = {}, set()

    def _save(self, base: _Columns | None, delta: _Columns | None, deleted: np.ndarray | None, generation: str):
        """Write new segments, then switch `state.json` to them atomically, then drop what it named before.

        `base=None` keeps the current base. Another process that still maps a dropped segment keeps
        reading it (an unlinked file lives on while mapped) until its generation check reloads.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        old = self._load()
        tag = uuid.uuid4().hex[:12]
        names: dict[str, str | None] = {"generation": generation}
        if base is not None:
            names["base"] = f"base-{tag}" if len(base.ids) else None
            if len(base.ids):
                _Segment.write(self.folder / f"base-{tag}", base)
        else:
            names["base"] = old.base.folder.name if old.base else None
        names["delta"] = f"delta-{tag}" if delta is not None else None
        if delta is not None:
            _Segment.write(self.folder / f"delta-{tag}", delta)
        names["deleted"] = f"deleted-{tag}.npy" if deleted is not None else None
        if deleted is not None:
            np.save(self.folder / f"deleted-{tag}.npy", deleted)
        tmp = self.folder / f".state-{tag}.json"
        tmp.write_text(json.dumps(names))
        replaced = _named(self.folder)  # read now: another process may have saved since this one loaded
        os.replace(tmp, self.folder / "state.json")
        self._state = None
        _remove_unused(self.folder, keep=set(names.values()), replaced=replaced)

    # -- queries -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._load().live()

    def search(self, query: str, k: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """Top-k (chunk id, BM25 score) pairs, best first; empty when nothing matches. With `allowed`,
        only those chunks are ranked (a question scoped to some documents)."""
        with self._lock:
            state = self._load()
            segments = [s for s in (state.base, state.delta) if s is not None]
            terms = tokenize(query)
            if not segments or not terms or k <= 0:
                return []
            docs = sum(len(s) for s in segments)  # with the deleted base rows, as the document frequencies
            dead = state.deleted if state.deleted is not None and state.base is not None else None
            live_length = sum(s.total_length for s in segments)
            if dead is not None:
                live_length -= int(np.asarray(state.base.lengths)[dead].sum())
            avgdl = live_length / max(1, state.live())
            found = [[s.term_id(t) for t in terms] for s in segments]
            hits: list[tuple[str, float]] = []
            for j, segment in enumerate(segments):
                scores = np.zeros(len(segment), dtype=np.float32)
                for i, _ in enumerate(terms):
                    if found[j][i] is None:
                        continue
                    df = sum(len(s.postings(f[i])[0]) for s, f in zip(segments, found, strict=True) if f[i] is not None)
                    idf = np.log(1 + (docs - df + 0.5) / (df + 0.5))
                    rows, tf = segment.postings(found[j][i])
                    tf = tf.astype(np.float32)
                    norm = K1 * (1 - B + B * segment.lengths[rows] / avgdl)
                    scores[rows] += (idf * tf / (tf + norm)).astype(np.float32)
                if segment is state.base and dead is not None:
                    scores[dead] = 0.0
                if allowed is not None:
                    keep = np.zeros(len(segment), dtype=bool)
                    keep[segment.rows_of(list(allowed))] = True
                    scores = np.where(keep, scores, 0.0)
                top = np.flatnonzero(scores > 0)
                if len(top) > k:
                    top = top[np.argpartition(-scores[top], k - 1)[:k]]
                hits += [(segment.ids[r].decode(), float(scores[r])) for r in top]
            hits.sort(key=lambda h: (-h[1], h[0]))
            return hits[:k]


_ABANDONED_S = 3600.0  # an unnamed segment this old is no run's work in progress


def _named(folder: Path) -> set[str]:
    """The entries `state.json` names now (none if there is none, or half of one)."""
    try:
        return {v for v in json.loads((folder / "state.json").read_text()).values() if isinstance(v, str)}
    except (OSError, ValueError, AttributeError):
        return set()


def _remove_unused(folder: Path, *, keep: set[str], replaced: set[str]) -> None:
    """Drop the segments the replaced state named, and unnamed entries over an hour old (a crashed
    run's, or the format before segments). Never a fresh unnamed one: another process (a server
    rebuilding while a CLI run commits) may have just written it and be about to name it; and an
    entry that process removes first is simply gone."""
    abandoned = time.time() - _ABANDONED_S
    for entry in folder.iterdir():
        if entry.name == "state.json" or entry.name in keep:
            continue
        try:
            if entry.name in replaced or entry.lstat().st_mtime < abandoned:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        except FileNotFoundError:
            continue
