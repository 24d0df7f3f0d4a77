"""The extractive reader: finds the answer span in each passage, or says that none holds it.

A MiniLM encoder fine-tuned with a start/end span head (SQuAD 2.0 convention: pointing both ends at
[CLS] means "no answer"), run through onnxruntime so that answering never imports torch.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from assistant.errors import ReaderError
from assistant.reading.windows import Window, load_tokenizer, make_windows, pad_batch

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "model"
MODEL_FILE = "model.onnx"


@dataclass(frozen=True)
class AnswerSpan:
    """The best span of one passage.

    Args:
        passage_index: index into the ``passages`` given to :meth:`Reader.read`.
        start, end: character offsets in that passage; ``passage[start:end] == text``.
        score: start + end logit of the span; ``null_score``: the [CLS] ("no answer") score of the same window.
        probability: calibrated probability that this span answers the question.
    """

    passage_index: int
    start: int
    end: int
    text: str
    score: float
    null_score: float
    probability: float


@dataclass(frozen=True)
class ReaderResult:
    """What the reader found.

    Args:
        spans: the best span of every passage that had text, in passage order.
        best: the most probable span over all passages (None when no passage had text).
        answer_probability: ``best.probability`` (0.0 without a span).
        no_answer_score: the [CLS] score of the window ``best`` came from (higher: more "no answer").

    Whether the span is sure enough to be an answer is not the reader's call: see `generation/decline.py`.
    """

    spans: list[AnswerSpan] = field(default_factory=list)
    best: AnswerSpan | None = None
    answer_probability: float = 0.0
    no_answer_score: float = 0.0


@dataclass(frozen=True)
class _WindowBest:
    start_token: int
    end_token: int
    score: float
    null_score: float

    @property
    def margin(self) -> float:
        return self.score - self.null_score


MIN_UNIT_WORDS = 20  # a shorter paragraph (a headline, a caption) is read together with the next one
_PAIRS = {"(": ")", "[": "]", "{": "}", "“": "”", "‘": "’", "«": "»"}
_CLOSERS = {v: k for k, v in _PAIRS.items()}
_TRAILING = ",;:"


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """`[start, end)` without surrounding whitespace, unpaired quotes or brackets, or a trailing , ; :

    Word pieces split punctuation off, and the reader sometimes takes the closing quote of a quoted
    word along ('called “categories” in this tool' → 'categories”'); a user should see the words.
    """
    while start < end:
        if _stray(text[start], text[start + 1 : end], _PAIRS):
            start += 1
        elif text[end - 1] in _TRAILING or _stray(text[end - 1], text[start : end - 1], _CLOSERS):
            end -= 1
        else:
            break
    return start, end


def _stray(char: str, rest: str, partners: dict[str, str]) -> bool:
    """Whether an edge character of a span is whitespace, or a quote or bracket whose partner `rest` lacks."""
    if char == '"':
        return '"' not in rest
    return char.isspace() or (char in partners and partners[char] not in rest)


def units(text: str) -> list[tuple[int, int]]:
    """Character ranges of a passage that the reader reads one at a time: its paragraphs.

    The reader learned on single paragraphs (SQuAD-style); an index chunk can hold several, headline
    and captions included, and read as one text a span in one paragraph competes with every other
    paragraph's ("Where are they meeting?" → the headline "…meets Pezeshkian for the first time today"
    instead of "Ashgabat" two paragraphs on). Paragraphs are blocks between blank lines; one under
    `MIN_UNIT_WORDS` words is joined to the next (the last to the one before). Text without blank
    lines is one unit.
    """
    blocks = [(m.start(), m.end()) for m in re.finditer(r"\S(?:.*?\S)?(?=\s*\n\s*\n|\s*$)", text, re.DOTALL)]
    out: list[tuple[int, int]] = []
    start = None
    for lo, hi in blocks:
        start = lo if start is None else start
        if len(text[start:hi].split()) >= MIN_UNIT_WORDS:
            out.append((start, hi))
            start = None
    if start is not None:
        tail_end = blocks[-1][1]
        out[-1:] = [(out[-1][0], tail_end)] if out else [(start, tail_end)]
    return out


@lru_cache(maxsize=64)
def _band(n: int, width: int) -> np.ndarray:
    """(start, end) token pairs with start <= end < start + width."""
    i, j = np.indices((n, n))
    return (j >= i) & (j - i < width)


class Reader:
    """Reads passages for a question with the shipped ONNX span model.

    ``read()`` warms up lazily (loads the model on first use, once, thread-safe); call ``warm_up()``
    early to pay that cost, and see a missing model, at start-up instead.

    Args:
        model_dir: folder with model.onnx, tokenizer.json and config.json (default: the shipped model).
        max_length: window length in word pieces (question included); ``stride``: overlap between windows.
        max_answer_tokens: longest span considered, in word pieces.
        threads: windows read at once, each on one thread (None: up to 4, never more than the CPU count).
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        max_length: int = 256,
        stride: int = 96,
        max_answer_tokens: int = 30,
        threads: int | None = None,
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
        self.max_length = max_length
        self.stride = stride
        self.max_answer_tokens = max_answer_tokens
        self.threads = threads or min(4, os.cpu_count() or 1)
        self._session = None
        self._tokenizer = None
        self._pool: ThreadPoolExecutor | None = None
        self._calibration = (1.0, 0.0)
        self._signed = False
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load config, tokenizer and model; raises ReaderError naming the file that is missing or corrupt."""
        with self._lock:
            if self._session is not None:
                return
            config = self._load_config(self.model_dir / "config.json")
            tokenizer = self._load(self.model_dir / "tokenizer.json", self._open_tokenizer)
            # A model quantized before issue #22 has int8 weights and says nothing of them: stored unsigned on
            # load, it computes the same integers on every CPU (weights.py). One whose config.json names its
            # "integer_weights" (uint8 since then; int8 only on purpose, as the benchmarks do) loads as it is.
            self._signed = config.get("variant", "int8") == "int8" and "integer_weights" not in config
            session = self._load(self.model_dir / MODEL_FILE, self._open_session)
            cal = config.get("calibration", {})
            self._calibration = (float(cal.get("scale", 1.0)), float(cal.get("bias", 0.0)))
            if self.threads > 1:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="reader")
            self._tokenizer, self._session = tokenizer, session

    @staticmethod
    def _load(path: Path, opener):
        if not path.is_file():
            raise ReaderError(f"reader model file is missing: {path}")
        try:
            return opener(path)
        except Exception as exc:
            raise ReaderError(f"reader model file is corrupt or unreadable: {path} ({type(exc).__name__})") from exc

    def _load_config(self, path: Path) -> dict:
        config = self._load(path, lambda p: json.loads(p.read_text(encoding="utf-8")))
        if not isinstance(config, dict):
            raise ReaderError(f"reader model file is corrupt or unreadable: {path} (not a JSON object)")
        return config

    def _open_tokenizer(self, path: Path):
        return load_tokenizer(path, self.max_length, self.stride)

    def _open_session(self, path: Path):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # windows run in parallel instead (see `_score`)
        opts.inter_op_num_threads = 1
        model: str | bytes = str(path)
        if self._signed:
            import onnx

            from assistant.reading.weights import unsigned_weights

            loaded = onnx.load(str(path))
            unsigned_weights(loaded)
            model = loaded.SerializeToString()
        return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])

    def read(self, question: str, passages: list[str]) -> ReaderResult:
        """The best span of each passage and how likely the best one answers the question.

        Args:
            question: the question; blank gives an empty result.
            passages: texts to read; long ones are read in overlapping windows.
        """
        if self._session is None:
            self.warm_up()
        if not question.strip() or not passages:
            return ReaderResult()
        pieces = [(i, lo, hi) for i, text in enumerate(passages) for lo, hi in units(text)]
        windows = make_windows(self._tokenizer, question, [passages[i][lo:hi] for i, lo, hi in pieces])
        if not windows:
            return ReaderResult()
        bests = self._score(windows)
        per_passage: dict[int, tuple[Window, _WindowBest]] = {}
        for window, best in zip(windows, bests, strict=True):
            index = pieces[window.passage_index][0]
            seen = per_passage.get(index)
            if seen is None or best.margin > seen[1].margin:
                per_passage[index] = (window, best)
        spans = [
            self._span(passages[i], i, pieces[w.passage_index][1], w, b) for i, (w, b) in sorted(per_passage.items())
        ]
        top = max(spans, key=lambda s: s.probability)
        return ReaderResult(
            spans=spans,
            best=top,
            answer_probability=top.probability,
            no_answer_score=top.null_score,
        )

    def _score(self, windows: list[Window]) -> list[_WindowBest]:
        """Run the model over each window on its own and pick each window's best span.

        Not in batches: the int8 model quantizes activations with one scale per call, so windows batched
        together (and their padding) shift each other's scores ("Stephen Hall" 0.44 read alone, another
        span when read beside three other passages; measured again for issue #22 in docs/cpus.md); one at
        a time is as fast on CPU, with no padding. Windows run side by side, each on one thread: a window
        of ~70 word pieces is too small to split over threads (two threads per run took twice the CPU
        of one on a 2-core AVX2 machine, for less than half the time back), and each window's result is
        the same whichever thread reads it.
        """

        def read(window: Window) -> _WindowBest:
            start, end = self._session.run(["start_logits", "end_logits"], pad_batch([window]))
            return self._best_in_window(start[0], end[0], window.offsets)

        if self._pool is None or len(windows) == 1:
            return [read(w) for w in windows]
        return list(self._pool.map(read, windows))

    def _best_in_window(self, start: np.ndarray, end: np.ndarray, offsets: np.ndarray) -> _WindowBest:
        n = len(offsets)
        start, end = start[:n].astype(np.float64), end[:n].astype(np.float64)
        valid = offsets[:, 0] >= 0
        scores = start[:, None] + end[None, :]
        allowed = _band(n, self.max_answer_tokens) & valid[:, None] & valid[None, :]
        scores = np.where(allowed, scores, -np.inf)
        flat = int(np.argmax(scores))
        s, e = divmod(flat, n)
        return _WindowBest(s, e, float(scores[s, e]), float(start[0] + end[0]))

    def _span(self, passage: str, index: int, shift: int, window: Window, best: _WindowBest) -> AnswerSpan:
        """The window's best span as an AnswerSpan of the whole passage (`shift`: where the unit starts)."""
        start, end = trim(
            passage, shift + int(window.offsets[best.start_token, 0]), shift + int(window.offsets[best.end_token, 1])
        )
        scale, bias = self._calibration
        z = scale * best.margin + bias
        probability = 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
        return AnswerSpan(index, start, end, passage[start:end], best.score, best.null_score, probability)
