"""Files are parsed in a worker process with bounded memory and time, so no file can take the machine down.

The parsers are large C and Python libraries reading untrusted bytes. The budgets checked before
parsing (`limits.py`) refuse the bombs we know; this bounds the ones we do not: the worker runs
under an address-space limit (RLIMIT_AS), and is killed when one step of a parse (a page, a
sheet's rows, a chapter, a mail part: loaders call `limits.step()`) takes longer than the step
limit. Either way the file is skipped with a reason, and the next file gets a fresh worker.

The worker is started on first use and reused for the following files (starting Python and the
parsers for each of 5,000 small files would cost minutes). It runs whatever `formats.parse` runs,
so every loader of the registry is bounded alike. Results travel as JSON, not pickle: the parent
never executes what a worker that read a hostile file sends back.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
import typing
from dataclasses import dataclass
from multiprocessing.connection import Connection

from assistant.ingest.formats.ocr import OcrOptions
from assistant.ingest.formats.pdf.glyphs import PAGE_READ
from assistant.schema import Document, Skipped
from assistant.settings import MB
from assistant.subprocesses import READY, Child, serve

_STEP_EVERY = 0.2  # seconds: a worker tells the parent it progressed at most this often
_START_SECONDS = 120.0  # most a worker may take to start (Python and the loaders' modules, on a busy machine)


@dataclass(frozen=True)
class ParseBounds:
    """What parsing one file may cost.

    Args:
        memory_mb: Address space of the worker process (ASSISTANT_PARSE_MEMORY_MB); 0 parses in
            this process with no bound (for callers that are themselves a bounded process).
        step_seconds: Longest a step of a parse may take (ASSISTANT_PARSE_STEP_SECONDS).
    """

    memory_mb: int = 4096
    step_seconds: float = 120.0

    @property
    def enabled(self) -> bool:
        return self.memory_mb > 0 and sys.platform != "win32"


@dataclass(frozen=True)
class ParseRequest:
    """One file's bytes to parse (`suffix` picks the loader)."""

    name: str
    suffix: str
    data: bytes
    max_chars: int
    ocr: OcrOptions  # the caller's settings: the long-lived worker must not read its own environment


class ParseWorker:
    """One worker process, started when needed, asked for one file at a time (thread-safe)."""

    def __init__(self, bounds: ParseBounds):
        self.bounds = bounds
        self._lock = threading.Lock()
        self._child: Child | None = None
        self._send: Connection | None = None
        self._receive: Connection | None = None

    def parse(self, request: ParseRequest) -> Document | Skipped:
        with self._lock:
            try:
                if self._child is None or not self._child.alive:
                    self._start()
                head = [request.name, request.suffix, request.max_chars, dataclasses.asdict(request.ocr)]
                self._send.send_bytes(json.dumps(head).encode())
                self._send.send_bytes(request.data)
            except (OSError, EOFError):  # the worker could not start, or died between two files
                self._stop()
                return self._crashed(request.name)
            return self._await(request.name)

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _await(self, name: str) -> Document | Skipped:
        limit = self.bounds.step_seconds
        while True:
            if not self._receive.poll(limit):
                self._stop()
                return Skipped(name, f"reading it took more than {limit:g} s without progress "
                               "(ASSISTANT_PARSE_STEP_SECONDS); possible parser bomb")  # fmt: skip
            try:
                message = json.loads(self._receive.recv_bytes())
            except (EOFError, OSError, ValueError):
                self._stop()
                return self._crashed(name)
            if message == "step":
                continue
            if isinstance(message, list) and message[:1] == ["page"]:  # a page read: pass it on, as in-process
                report = PAGE_READ.get()
                if report is not None:
                    report(int(message[1]), int(message[2]))
                continue
            if message.get("memory"):  # the worker hit its limit: start a fresh one for the next file
                self._stop()
            return _result(message)

    def _crashed(self, name: str) -> Skipped:
        return Skipped(name, f"the parser ran out of memory or crashed (limit {self.bounds.memory_mb:,} MB, "
                       "ASSISTANT_PARSE_MEMORY_MB)")  # fmt: skip

    def _start(self) -> None:
        # Starting Python is not a step of any file's parse: wait for the worker apart from the step limit.
        self._child = Child.start("assistant.ingest.worker", str(self.bounds.memory_mb * MB), wait_s=_START_SECONDS)
        self._send, self._receive = self._child.send, self._child.receive

    def _stop(self) -> None:
        if self._child is not None:
            self._child.stop()
        self._child = self._send = self._receive = None


_workers: dict[ParseBounds, ParseWorker] = {}
_workers_lock = threading.Lock()


def parse(request: ParseRequest, bounds: ParseBounds) -> Document | Skipped:
    """Parse one file's bytes within `bounds`: in the shared worker, or here when bounds are off."""
    if not bounds.enabled:
        from assistant.ingest.formats import parse

        return parse(request.name, request.suffix, request.data, request.max_chars, request.ocr)
    with _workers_lock:
        worker = _workers.get(bounds) or _workers.setdefault(bounds, ParseWorker(bounds))
    return worker.parse(request)


def shutdown() -> None:
    """Stop the shared workers (they also end when this process does); the next parse starts a new one."""
    with _workers_lock:
        for worker in _workers.values():
            worker.close()
        _workers.clear()


def _result(message: dict) -> Document | Skipped:
    if "reason" in message:
        return Skipped(message["name"], message["reason"])
    return _rebuild(Document, message["document"])


def _message(result: Document | Skipped) -> dict:
    if isinstance(result, Skipped):
        return {"name": result.path, "reason": result.reason}
    return {"name": result.source, "document": dataclasses.asdict(result)}


def _rebuild(cls, data: dict):
    """A dataclass from `dataclasses.asdict` output: tuples of dataclasses become them again, every field kept."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, hint = data[f.name], hints[f.name]
        args = typing.get_args(hint)
        if typing.get_origin(hint) is tuple and args and dataclasses.is_dataclass(args[0]):
            value = tuple(_rebuild(args[0], item) for item in value)
        elif typing.get_origin(hint) is tuple:
            value = tuple(value)
        elif dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = _rebuild(hint, value)
        values[f.name] = value
    return cls(**values)


# -- the worker process --------------------------------------------------------------------------


def _serve(memory_bytes: int) -> None:
    """Parse the files the parent sends until it closes the pipe."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:  # a parent that is itself limited: stay within its limit
        memory_bytes = min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))
    send, receive = serve()
    import bs4  # noqa: F401  (html, e-books and mail all need it: not a step of the first such file)

    from assistant.ingest import limits
    from assistant.ingest.formats import parse

    last = 0.0

    def progressed() -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= _STEP_EVERY:
            last = now
            send.send_bytes(b'"step"')

    limits.on_step(progressed)
    PAGE_READ.set(lambda n, of: send.send_bytes(json.dumps(["page", n, of]).encode()))
    send.send_bytes(READY)
    while True:
        try:
            name, suffix, max_chars, ocr = json.loads(receive.recv_bytes())
            data = receive.recv_bytes()
        except EOFError:
            return
        try:
            message = _message(parse(name, suffix, data, max_chars, OcrOptions(**ocr)))
        except MemoryError:
            message = {"name": name, "memory": True, "reason": f"needs more than {memory_bytes // MB:,} MB of "
                       "memory to read (ASSISTANT_PARSE_MEMORY_MB)"}  # fmt: skip
        except Exception as exc:  # a last guard, as in `load_file`
            message = {"name": name, "reason": f"could not load: {type(exc).__name__}"}
        del data
        send.send_bytes(json.dumps(message).encode())


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
