"""One build of the embedding model, run by onnxruntime a text at a time.

Every text is run alone (a batch of one): no padding, about a third faster than padded batches on
two cores, and a passage's vector never depends on what it was batched with (dynamic int8 picks
one activation scale per run). Texts are spread over one single-threaded run per core.

Importing this module changes nothing global and loads no model. Loading a tokenizer sets
TOKENIZERS_PARALLELISM to false unless the application set it (the library warns at every fork).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def before_loading() -> None:
    """What loading a tokenizer needs from the process (see the module docstring)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class OnnxEncoder:
    """One build of the model (pooling included), run by onnxruntime a text at a time.

    Args:
        session: An `onnxruntime.InferenceSession` of a build made by `assistant.embedding_graph`.
        tokenizer: The model's `tokenizers.Tokenizer`, truncating as the model does, not padding.
        dimension: The vectors' length.
        threads: Texts run at once, each on one thread (onnxruntime releases the GIL).
    """

    def __init__(self, session, tokenizer, dimension: int, threads: int = 1):
        self.session = session
        self.tokenizer = tokenizer
        self.dimension = dimension
        self.threads = threads
        self.inputs = {i.name for i in session.get_inputs()}
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="embed") if threads > 1 else None
        self._frame = _Frame.of(tokenizer)

    @classmethod
    def load(cls, path: Path, tokenizer_file: Path, max_length: int, dimension: int, threads: int = 1):
        """The encoder for a build, or None if onnxruntime cannot load the file."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from assistant.embedding_graph import SESSION_DISABLED_OPTIMIZERS

        before_loading()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1  # parallel over texts instead (see the module docstring)
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=SESSION_DISABLED_OPTIMIZERS
            )
        except Exception:  # onnxruntime's errors derive from Exception alone: a broken or foreign file
            return None
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.enable_truncation(max_length)
        tokenizer.no_padding()
        return cls(session, tokenizer, dimension, threads)

    def encode(self, texts: list[str], word_pieces: list[list[int] | None] | None = None) -> np.ndarray:
        """Vectors of `texts` (see `feeds` on `word_pieces`)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        feeds = self.feeds(texts, word_pieces)
        if self._pool is None or len(texts) == 1:
            rows = [self.run(f) for f in feeds]
        else:
            rows = list(self._pool.map(self.run, feeds))
        return unit(np.stack(rows).astype(np.float32, copy=False))

    def feeds(self, texts: list[str], word_pieces: list[list[int] | None] | None = None) -> list[Feed]:
        """What the model reads of each text: where `word_pieces` gives a text's pieces (see
        `Embedder.encode`) and they fit the model, they are framed with the special tokens instead
        of tokenising the text."""
        frame = self._frame
        use = word_pieces if frame is not None and word_pieces else [None] * len(texts)
        pieces = [p if p is not None and frame.fits(p) else None for p in use]
        todo = [t for t, p in zip(texts, pieces, strict=True) if p is None]
        encoded = iter(self.tokenizer.encode_batch(todo) if todo else [])
        return [frame.around(p) if p is not None else Feed.of(next(encoded)) for p in pieces]

    def run(self, feed: Feed) -> np.ndarray:
        """One text's vector, pooled but not yet of unit length (`encode` scales a batch at once)."""
        inputs = {
            "input_ids": np.array([feed.ids], dtype=np.int64),
            "attention_mask": np.array([feed.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([feed.type_ids], dtype=np.int64),
        }
        return self.session.run(None, {k: v for k, v in inputs.items() if k in self.inputs})[0][0]


@dataclass(frozen=True)
class Feed:
    """One text as the model reads it."""

    ids: list[int]
    attention_mask: list[int]
    type_ids: list[int]

    @classmethod
    def of(cls, encoding) -> Feed:
        return cls(encoding.ids, encoding.attention_mask, encoding.type_ids)


@dataclass(frozen=True)
class _Frame:
    """What the tokenizer puts around a text's word pieces (the special tokens), and the most it keeps."""

    before: list[int]
    after: list[int]
    type_ids: tuple[list[int], int, list[int]]
    max_length: int

    @classmethod
    def of(cls, tokenizer) -> _Frame | None:
        """Read off from tokenising a probe with and without special tokens; None if that shows no frame."""
        probe = "frame"
        bare = tokenizer.encode(probe, add_special_tokens=False)
        full = tokenizer.encode(probe)
        n = len(bare.ids)
        at = next((i for i in range(len(full.ids) - n + 1) if full.ids[i : i + n] == bare.ids), None)
        truncation = tokenizer.truncation or {}
        if at is None or not n or set(full.attention_mask) != {1} or not truncation.get("max_length"):
            return None
        types = full.type_ids
        framing = (types[:at], types[at], types[at + n :])
        return cls(full.ids[:at], full.ids[at + n :], framing, truncation["max_length"])

    def fits(self, pieces: list[int]) -> bool:
        return len(self.before) + len(pieces) + len(self.after) <= self.max_length

    def around(self, pieces: list[int]) -> Feed:
        ids = [*self.before, *pieces, *self.after]
        before, inside, after = self.type_ids
        return Feed(ids, [1] * len(ids), [*before, *[inside] * len(pieces), *after])


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
