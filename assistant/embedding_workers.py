"""Documents embedded in worker processes, so that nothing else an indexing run does stalls the model.

A write to the embedded Chroma holds Python's GIL for as long as it takes (0.1-0.4 s for a few
hundred passages), and so does pure-Python work (cutting passages, building records, the keyword
index). Encoding threads in the same process release the GIL while onnxruntime runs a text, but
need it between texts: every write stalled both of them, and indexing ran at ~0.8 of the model's
rate however well its stages overlapped. Worker processes have their own interpreters: each
holds a few messages of texts queued ahead of the one it runs, so the model keeps running
while the parent is busy, and the parent collects the vectors when it can.

Each worker runs the same build with one thread and a text at a time, exactly as `OnnxEncoder`
does in-process, so the vectors are bit-identical. Word pieces travel as int32 and vectors as
float32 bytes (no pickle). A worker that dies fails the jobs in flight with an `EmbeddingError`
and closes the pool; the owner starts a new one when it next needs one.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.encoder import Feed, OnnxEncoder, unit
from assistant.errors import EmbeddingError
from assistant.subprocesses import READY, Child, serve

_START_SECONDS = 120.0  # most a worker may take to start (Python, onnxruntime, the build) on a busy machine


class EncoderWorkers:
    """Worker processes embedding with one build, one text at a time each.

    Args:
        build: The ONNX build's file (as `Embedder.onnx_path` names it; it must exist).
        tokenizer_file: The model's tokenizer (texts given without word pieces are tokenised here,
            in the parent, so a worker only reads ids).
        max_length: The most word pieces the model reads.
        dimension: The vectors' length.
        count: Worker processes (one per core the model may use).

    Raises:
        EmbeddingError: a worker cannot start.
    """

    part = 8  # texts per message: small enough to spread the work evenly, large enough to cost nothing
    ahead = 3  # messages each worker holds queued behind the one it runs: ~0.7 s of work, longer than a write

    def __init__(self, build: Path, tokenizer_file: Path, max_length: int, dimension: int, count: int):
        self.dimension = dimension
        self._queue: queue.Queue[_Part | None] = queue.Queue()
        self._lock = threading.Lock()
        self._error: str | None = None
        args = ("assistant.embedding_workers", str(build), str(tokenizer_file), str(max_length), str(dimension))
        with ThreadPoolExecutor(count) as starting:  # each worker takes ~1 s to import and load: side by side
            started = [starting.submit(Child.start, *args, wait_s=_START_SECONDS) for _ in range(count)]
        children = [f.result() for f in started if f.exception() is None]
        if len(children) < count:
            for child in children:
                child.stop()
            raise EmbeddingError(f"Cannot start the embedding workers ({sys.executable} -m {args[0]}).")
        self._lanes = [_Lane(child, self._queue, self.ahead, self._fail) for child in children]

    @property
    def alive(self) -> bool:
        return self._error is None and all(lane.child.alive for lane in self._lanes)

    def submit(self, feeds: list[Feed]) -> Future[np.ndarray]:
        """Queue texts (as `OnnxEncoder.feeds` gives them) behind those queued before; the future
        gives their unit vectors in order, or raises `EmbeddingError` if a worker failed."""
        starts = range(0, len(feeds), self.part)
        job = _Job(len(feeds), self.dimension, parts=len(starts))
        parts = [_Part(job, at, feeds[at : at + self.part]) for at in starts]
        with self._lock:
            if self._error is not None:
                raise EmbeddingError(self._error)
            for part in parts:
                self._queue.put(part)
        return job.future

    def close(self) -> None:
        """Stop the workers; jobs not done fail."""
        self._fail("The embedding workers were stopped.")

    def _fail(self, error: str) -> None:
        """Stop every worker and fail what is queued or in flight (one worker's failure ends the pool)."""
        with self._lock:
            if self._error is not None:
                return
            self._error = error
        for lane in self._lanes:
            lane.stop(error)
        while True:
            try:
                part = self._queue.get_nowait()
            except queue.Empty:
                break
            if part is not None:
                part.job.fail(error)
        for _ in self._lanes:
            self._queue.put(None)  # wakes feeders waiting for work


class _Job:
    """One `submit`: its rows fill in as parts come back, in any order."""

    def __init__(self, n: int, dimension: int, parts: int):
        self.future: Future[np.ndarray] = Future()
        self.rows = np.empty((n, dimension), dtype=np.float32)
        self.left = parts
        self._lock = threading.Lock()
        if not parts:
            self.future.set_result(self.rows)

    def fill(self, at: int, vectors: np.ndarray) -> None:
        with self._lock:
            self.rows[at : at + len(vectors)] = vectors
            self.left -= 1
            if self.left == 0:
                self._settle(lambda: self.future.set_result(unit(self.rows)))

    def fail(self, error: str) -> None:
        with self._lock:
            self._settle(lambda: self.future.set_exception(EmbeddingError(error)))

    def _settle(self, set_it) -> None:
        try:
            set_it()
        except InvalidStateError:  # already failed, or cancelled by its owner
            pass


@dataclass(frozen=True)
class _Part:
    """Up to `EncoderWorkers.part` texts of a job, starting at row `at`."""

    job: _Job
    at: int
    feeds: list[Feed]


class _Lane:
    """One worker and the two threads that feed it parts from the shared queue and read its answers
    back (at most `ahead` + 1 parts in flight). A worker that dies calls `failed`, which stops
    every lane."""

    def __init__(self, child: Child, work: queue.Queue, ahead: int, failed: Callable[[str], None]):
        self.child = child
        self._work = work
        self._failed = failed
        self._slots = threading.Semaphore(ahead + 1)
        self._in_flight: deque[_Part] = deque()
        self._error: str | None = None
        for name, target in (("feed", self._feed), ("read", self._read)):
            threading.Thread(target=target, name=f"embed-worker-{name}", daemon=True).start()

    def stop(self, error: str) -> None:
        self._error = error
        self.child.stop()
        while True:
            try:
                self._in_flight.popleft().job.fail(error)
            except IndexError:
                break
        self._slots.release()  # wakes the feeder if it waits for a slot

    def _feed(self) -> None:
        while True:
            self._slots.acquire()
            part = self._work.get() if self._error is None else None
            if part is None or self._error is not None:
                if part is not None:
                    part.job.fail(self._error)
                return
            if part.job.future.done():  # its owner gave up on it (an error elsewhere in its run)
                self._slots.release()
                continue
            self._in_flight.append(part)
            try:
                self.child.send.send_bytes(_pack(part.feeds))
            except OSError:
                self._failed(self._died())
                return

    def _read(self) -> None:
        while True:
            try:
                message = self.child.receive.recv_bytes()
                part = self._in_flight.popleft()
            except (EOFError, OSError, IndexError):
                if self._error is None:
                    self._failed(self._died())
                return
            self._slots.release()
            if message[:1] == b"v":
                vectors = np.frombuffer(message, dtype=np.float32, offset=1).reshape(len(part.feeds), -1)
                part.job.fill(part.at, vectors)
            else:
                part.job.fail(f"An embedding worker failed: {message[1:].decode(errors='replace')}")

    def _died(self) -> str:
        try:
            code = self.child.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # its channel broke, yet it runs: it is stopped with the others
            code = None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return f"An embedding worker stopped ({how}); the run can be started again."


def _pack(feeds: list[Feed]) -> bytes:
    """Texts' ids and token types as bytes: counts, lengths, then each array joined (int32, int8)."""
    lengths = np.array([len(f.ids) for f in feeds], dtype=np.int32)
    ids = np.fromiter((i for f in feeds for i in f.ids), dtype=np.int32, count=int(lengths.sum()))
    types = np.fromiter((t for f in feeds for t in f.type_ids), dtype=np.int8, count=int(lengths.sum()))
    return np.int32(len(feeds)).tobytes() + lengths.tobytes() + ids.tobytes() + types.tobytes()


def _unpack(message: bytes) -> list[Feed]:
    n = int(np.frombuffer(message, dtype=np.int32, count=1)[0])
    lengths = np.frombuffer(message, dtype=np.int32, count=n, offset=4)
    total = int(lengths.sum())
    ids = np.frombuffer(message, dtype=np.int32, count=total, offset=4 + 4 * n).tolist()
    types = np.frombuffer(message, dtype=np.int8, count=total, offset=4 + 4 * n + 4 * total).tolist()
    feeds, at = [], 0
    for length in lengths.tolist():
        feeds.append(Feed(ids[at : at + length], [1] * length, types[at : at + length]))
        at += length
    return feeds


def _serve(build: str, tokenizer_file: str, max_length: str, dimension: str) -> None:
    """Embed the texts the parent sends until it closes the channel."""
    send, receive = serve()
    encoder = OnnxEncoder.load(Path(build), Path(tokenizer_file), int(max_length), int(dimension), threads=1)
    if encoder is None:
        sys.exit(1)
    send.send_bytes(READY)
    while True:
        try:
            message = receive.recv_bytes()
        except EOFError:
            return
        try:
            rows = np.stack([encoder.run(feed) for feed in _unpack(message)]).astype(np.float32, copy=False)
            send.send_bytes(b"v" + rows.tobytes())
        except Exception as exc:  # onnxruntime's errors derive from Exception alone: said, not fatal
            send.send_bytes(b"e" + f"{type(exc).__name__}: {exc}".encode())


if __name__ == "__main__":
    _serve(*sys.argv[1:5])
