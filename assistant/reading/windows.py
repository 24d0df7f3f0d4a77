"""Question + passage -> overlapping token windows, the same way at training and at answer time.

Training and inference must cut passages identically, or the span head sees windows it never learned
from; both go through :func:`make_windows`. Only the ``tokenizers`` library is used (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from tokenizers import Tokenizer

MAX_QUESTION_TOKENS = 64


@dataclass(frozen=True)
class Window:
    """One model input: [CLS] question [SEP] a piece of one passage [SEP].

    Args:
        passage_index: which passage (of the batch given to :func:`make_windows`) this piece comes from.
        ids: token ids; ``type_ids``: 0 for the question part, 1 for the passage part.
        offsets: per token, (start, end) character offsets into the passage; (-1, -1) for tokens that are
            not passage tokens (question, specials), so they can never be picked as a span.
    """

    passage_index: int
    ids: np.ndarray
    type_ids: np.ndarray
    offsets: np.ndarray

    @property
    def context_range(self) -> tuple[int, int]:
        """Character range of the passage this window covers."""
        inside = self.offsets[self.offsets[:, 0] >= 0]
        return int(inside[0, 0]), int(inside[-1, 1])


def load_tokenizer(path: str | Path, max_length: int, stride: int) -> Tokenizer:
    """A fast tokenizer set up to truncate only the passage, with ``stride`` tokens of overlap."""
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length, stride=stride, strategy="only_second")
    return tok


def _short_question(tok: Tokenizer, question: str) -> str:
    """Cut a very long question so that it leaves room for the passage."""
    enc = tok.encode(question, add_special_tokens=False)
    if len(enc.ids) <= MAX_QUESTION_TOKENS:
        return question
    return question[: enc.offsets[MAX_QUESTION_TOKENS - 1][1]]


def make_windows(tok: Tokenizer, question: str, passages: list[str]) -> list[Window]:
    """All windows of all passages, in passage order.

    Args:
        tok: a tokenizer from :func:`load_tokenizer`.
        question: the question (over 64 word pieces it is cut).
        passages: the texts to read; an empty passage gives no window.
    """
    q = _short_question(tok, question.strip())
    encodings = tok.encode_batch([(q, p) for p in passages]) if passages else []
    windows: list[Window] = []
    for index, first in enumerate(encodings):
        if passages[index].strip():
            windows.extend(windows_of(first, index))
    return windows


def encode_pairs(tok: Tokenizer, pairs: list[tuple[str, str]]) -> list[list[Window]]:
    """Windows of many (question, passage) pairs at once (for training data); one list per pair."""
    encodings = tok.encode_batch([(_short_question(tok, q.strip()), p) for q, p in pairs])
    return [windows_of(enc, 0) for enc in encodings]


def windows_of(first, passage_index: int) -> list[Window]:
    """The windows of one encoded pair: the encoding itself and its overflowing pieces."""
    out = []
    for enc in [first, *first.overflowing]:
        offsets = np.array(enc.offsets, dtype=np.int64).reshape(-1, 2)
        is_passage = np.array([s == 1 for s in enc.sequence_ids], dtype=bool)
        offsets[~is_passage] = -1
        if is_passage.any():
            out.append(
                Window(
                    passage_index=passage_index,
                    ids=np.array(enc.ids, dtype=np.int64),
                    type_ids=np.array(enc.type_ids, dtype=np.int64),
                    offsets=offsets,
                )
            )
    return out


class Encoded(Protocol):
    """What padding needs of a window: its token ids and segment ids (a Window, or a training Feature)."""

    ids: np.ndarray
    type_ids: np.ndarray


def pad_batch(windows: Sequence[Encoded]) -> dict[str, np.ndarray]:
    """Model inputs for a batch of windows, padded to the longest one (int64, zeros as padding)."""
    width = max(len(w.ids) for w in windows)
    ids = np.zeros((len(windows), width), dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for row, w in enumerate(windows):
        n = len(w.ids)
        ids[row, :n] = w.ids
        types[row, :n] = w.type_ids
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
