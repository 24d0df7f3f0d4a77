"""What every benchmark needs: the project on sys.path, offline env vars, the shared data folder;
and what the concurrent-chat benches share: one served index, many user threads, a tally."""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ../shared/data beside the checkout (as laid out for developers and CI); override with BENCH_DATA.
DATA = Path(os.environ.get("BENCH_DATA") or ROOT.parent / "shared" / "data")
ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
for _key, _value in ENV.items():
    os.environ.setdefault(_key, _value)


def cpu_seconds() -> float:
    """CPU time of this process and of its live children (the embedding workers): `time.process_time`
    counts this process only, and the children's times only once they have ended and been waited for."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    me = str(os.getpid())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:  # fields after the name: state, ppid, ..., utime and stime at 11 and 12
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


# -- many users chatting with one `assistant serve` (concurrent_chat.py, openai_concurrent.py) ------
SQUAD = DATA / "squad-v2-dev"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chat_parser(doc: str, rounds: int, rounds_help: str) -> argparse.ArgumentParser:
    """The options every concurrent-chat bench takes.

    Args:
        doc: the bench's module docstring (its first line is the description).
        rounds: default turns per user.
        rounds_help: what a round is in this bench.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=rounds, help=rounds_help)
    parser.add_argument("--articles", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per request")
    return parser


def squad_articles(articles: int) -> tuple[list[Path], dict[str, list[str]]]:
    """The first `articles` SQuAD documents, and each one's answerable questions by file name."""
    docs = sorted((SQUAD / "docs").glob("*.txt"))[:articles]
    questions: dict[str, list[str]] = {d.name: [] for d in docs}
    for rec in map(json.loads, (SQUAD / "questions.jsonl").read_text(encoding="utf-8").splitlines()):
        if rec["document"] in questions and not rec["is_impossible"]:
            questions[rec["document"]].append(rec["question"])
    return docs, questions


@contextmanager
def served(docs: list[Path], work: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Index `docs` into `work/index`, run `assistant serve` on a free port, yield its base URL, stop it.

    Args:
        docs: files to index first.
        work: scratch folder (index and server.log go there).
        env: extra variables for both subprocesses.
    """
    full = {**os.environ, **ENV, "ASSISTANT_INDEX_DIR": str(work / "index"), "PYTHONPATH": str(ROOT), **(env or {})}
    cmd = [sys.executable, "-m", "assistant"]
    subprocess.run([*cmd, "index", *map(str, docs), "--json"], env=full, check=True, capture_output=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(work / "server.log", "wb") as log:
        server = subprocess.Popen([*cmd, "serve", "--port", str(port)], env=full, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {(work / 'server.log').read_text()[-1500:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


class Tally:
    """What the users' threads report: latencies, errors, and where each follow-up's answer came from."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.follow_ups = {"own": 0, "declined": 0, "other": 0}
        self.lock = threading.Lock()

    def error(self, exc: Exception) -> None:
        with self.lock:
            self.errors.append(f"{type(exc).__name__}: {exc}"[:200])

    def answer(self, elapsed_ms: float, follow_up: str | None) -> None:
        """Count one answer; `follow_up` is "own", "declined" or "other" for a follow-up, else None."""
        with self.lock:
            self.latencies.append(elapsed_ms)
            if follow_up:
                self.follow_ups[follow_up] += 1

    def run(self, user: Callable[[int], None], users: int, join_timeout: float) -> float:
        """Run `user(n)` for every user in its own thread at once; returns the wall time in seconds."""
        start = time.perf_counter()
        threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(join_timeout)
        return time.perf_counter() - start

    def report(self, head: dict, wall: float, extra: dict, as_json: bool) -> None:
        """Print `head`, the latencies and follow-up counts, `extra`, the load and the first errors.

        Args:
            head: the bench's own leading fields (users, request count).
            wall: seconds all users took.
            extra: the bench's own fields after the counts.
            as_json: one JSON line instead of `key: value` lines.
        """
        lat = sorted(self.latencies)
        out = {
            **head,
            "errors": len(self.errors),
            "p50_ms": round(statistics.median(lat), 1) if lat else None,
            "p95_ms": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1) if lat else None,
            "answers_per_s": round(len(lat) / wall, 2),
            "follow_ups_in_own_conversation": self.follow_ups["own"],
            "follow_ups_declined": self.follow_ups["declined"],
            "follow_ups_citing_another_users_article": self.follow_ups["other"],
            **extra,
            "load_average": round(os.getloadavg()[0], 1),
            "first_errors": self.errors[:3],
        }
        print(json.dumps(out) if as_json else "\n".join(f"{k}: {v}" for k, v in out.items()))
