"""A BM25 keyword index kept beside the Chroma collection.

Chroma holds the vectors; exact terms (names, numbers, rare words) are what dense MiniLM
vectors miss, so a stemmed BM25 index over the same chunks is fused with them at query time.
Token lists are stored per chunk so updates are incremental; the BM25 matrix is rebuilt once
after a change (never per query) and saved, so a fresh process only memory-maps it.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from assistant.errors import StoreError


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


# bm25s's English stop words (`bm25s.stopwords.STOPWORDS_EN`), copied so a question never imports
# bm25s (and scipy): that import alone costs about a second of a first answer.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "  # noqa: SIM905
    "these they this to was will with".split()
)


def _stopwords() -> frozenset[str]:
    return STOPWORDS


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop-word free, Snowball-stemmed word tokens."""
    import re

    words = [w for w in re.findall(r"(?u)\b\w\w+\b", text.lower()) if w not in _stopwords()]
    return _stemmer().stemWords(words)


def tokenize_many(texts: list[str]) -> list[list[str]]:
    """Tokens of each text; repeated texts (boilerplate, copies) are tokenised once."""
    seen: dict[str, list[str]] = {}
    return [seen[t] if t in seen else seen.setdefault(t, tokenize(t)) for t in texts]


class KeywordIndex:
    """BM25 over chunk ids, persisted in `folder`.

    Args:
        folder: Where the token lists, the BM25 matrix and the generation stamp live.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._tokens: dict[str, list[str]] | None = None
        self._bm25 = None
        self._ids: list[str] = []
        self._generation: str | None = None
        self._lock = threading.RLock()

    # -- persistence -------------------------------------------------------------------------
    @property
    def generation(self) -> str | None:
        if self._generation is None:
            try:
                self._generation = (self.folder / "generation").read_text().strip() or None
            except OSError:
                self._generation = None
        return self._generation

    def reload(self) -> None:
        """Forget what is in memory, so the next use reads the folder (another process may have saved it)."""
        with self._lock:
            self._tokens, self._bm25, self._ids, self._generation = None, None, [], None

    def _load_tokens(self) -> dict[str, list[str]]:
        if self._tokens is None:
            try:
                with open(self.folder / "tokens.pkl", "rb") as fh:
                    self._tokens = pickle.load(fh)
            except (OSError, pickle.UnpicklingError, EOFError):
                self._tokens = {}
        return self._tokens

    def _load_bm25(self) -> _Scores | None:
        if self._bm25 is None and (self.folder / "bm25").exists():
            try:
                self._bm25 = _Scores.load(self.folder / "bm25")
                self._ids = json.loads((self.folder / "ids.json").read_text())
            except (OSError, ValueError, KeyError, StoreError):
                self._bm25, self._ids = None, []
        return self._bm25

    # -- updates -------------------------------------------------------------------------------
    def replace_all(self, ids: list[str], texts: list[str], generation: str) -> None:
        """Rebuild from the store's full contents (first use, or another process changed it)."""
        with self._lock:
            self._tokens = dict(zip(ids, tokenize_many(texts), strict=True))
            self.commit(generation)

    def update(self, add_ids: list[str], add_texts: list[str], remove_ids: list[str]) -> None:
        with self._lock:
            tokens = self._load_tokens()
            for i in remove_ids:
                tokens.pop(i, None)
            tokens.update(zip(add_ids, tokenize_many(add_texts), strict=True))

    def commit(self, generation: str) -> None:
        """Rebuild the BM25 matrix from the token lists and save everything atomically."""
        import bm25s

        with self._lock:
            tokens = self._load_tokens()
            ids = sorted(tokens)
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".keyword-", dir=self.folder))
            try:
                bm25 = None
                if ids:
                    bm25 = bm25s.BM25()
                    bm25.index([tokens[i] or ["\x00empty"] for i in ids], show_progress=False)
                    bm25.save(str(tmp / "bm25"))
                    bm25 = _Scores.load(tmp / "bm25", mmap=False)
                (tmp / "ids.json").write_text(json.dumps(ids))
                with open(tmp / "tokens.pkl", "wb") as fh:
                    pickle.dump(tokens, fh, protocol=pickle.HIGHEST_PROTOCOL)
                for name in ("bm25", "ids.json", "tokens.pkl"):
                    target = self.folder / name
                    if target.is_dir():
                        shutil.rmtree(target)
                    if (tmp / name).exists():
                        os.replace(tmp / name, target)
                (self.folder / "generation").write_text(generation)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            self._bm25, self._ids, self._generation = bm25, ids, generation

    # -- queries -------------------------------------------------------------------------------
    def __len__(self) -> int:
        self._load_bm25()
        return len(self._ids)

    def search(self, query: str, k: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """Top-k (chunk id, BM25 score) pairs, best first; empty when nothing matches. With `allowed`,
        only those chunks are ranked (a question scoped to some documents)."""
        with self._lock:
            bm25 = self._load_bm25()
            terms = tokenize(query)
            if bm25 is None or not terms:
                return []
            known = [bm25.vocab[t] for t in terms if t in bm25.vocab]
            if not known:
                return []
            scores = bm25.scores(known)
            if allowed is not None:
                keep = np.zeros(len(scores), dtype=bool)
                keep[[i for i, chunk in enumerate(self._ids) if chunk in allowed]] = True
                scores = np.where(keep, scores, 0.0)
            k = min(k, len(scores))
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top])]
            return [(self._ids[i], float(scores[i])) for i in top if scores[i] > 0]


class _Scores:
    """A saved bm25s index read with numpy alone: the eager BM25 score matrix, memory-mapped.

    bm25s ("lucene" variant) stores each term's precomputed per-document scores as a CSC column;
    a query's scores are the sum of its terms' columns, exactly as `bm25s.BM25.get_scores`.
    """

    def __init__(self, vocab: dict[str, int], data, indices, indptr, num_docs: int):
        self.vocab, self.data, self.indices, self.indptr, self.num_docs = vocab, data, indices, indptr, num_docs

    @classmethod
    def load(cls, folder: Path, *, mmap: bool = True) -> _Scores:
        params = json.loads((folder / "params.index.json").read_text())
        if params.get("method", "lucene") not in ("lucene", "robertson", "atire"):
            raise StoreError(f"unsupported BM25 variant {params.get('method')!r}")  # these need no extra array
        mode = "r" if mmap else None
        return cls(
            json.loads((folder / "vocab.index.json").read_text()),
            np.load(folder / "data.csc.index.npy", mmap_mode=mode),
            np.load(folder / "indices.csc.index.npy", mmap_mode=mode),
            np.load(folder / "indptr.csc.index.npy", mmap_mode=mode),
            int(params["num_docs"]),
        )

    def scores(self, term_ids: list[int]) -> np.ndarray:
        out = np.zeros(self.num_docs, dtype=np.float32)
        for t in term_ids:
            lo, hi = int(self.indptr[t]), int(self.indptr[t + 1])
            out[self.indices[lo:hi]] += self.data[lo:hi]  # a column lists each document once
        return out
