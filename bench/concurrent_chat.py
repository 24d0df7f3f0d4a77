"""Many users chatting at once, each through its own `gradio_client` session.

Builds a small index (several SQuAD v2 dev articles) in a temporary folder, starts
`python -m assistant serve` on a free loopback port, and runs `--users` simultaneous
`gradio_client.Client` sessions. Each user talks about one article: a question from it, then
`--rounds - 1` follow-ups ("What else is known about that?") that only make sense with that user's
own earlier turn. A follow-up stays in its own conversation when its answer cites the user's
article (or declines); an answer citing another user's article would mean conversations mixed.
Bounded in count and time; loopback only.

    python bench/concurrent_chat.py --json [--users 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from _common import DATA, ENV, ROOT

DATA = DATA / "squad-v2-dev"
FOLLOW_UP = "What else is known about that?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="turns per user: one question, then follow-ups")
    parser.add_argument("--articles", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per request")
    args = parser.parse_args()

    docs = sorted((DATA / "docs").glob("*.txt"))[: args.articles]
    first_questions: dict[str, list[str]] = {d.name: [] for d in docs}
    for rec in map(json.loads, (DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines()):
        if rec["document"] in first_questions and not rec["is_impossible"]:
            first_questions[rec["document"]].append(rec["question"])

    work = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    env = {**os.environ, **ENV, "ASSISTANT_INDEX_DIR": str(work / "index"), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "assistant"]
    subprocess.run([*cmd, "index", *map(str, docs), "--json"], env=env, check=True, capture_output=True)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(work / "server.log", "wb") as log:
        server = subprocess.Popen([*cmd, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
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
        from gradio_client import Client

        latencies: list[float] = []
        errors: list[str] = []
        follow_ups = {"own": 0, "declined": 0, "other": 0}
        lock = threading.Lock()

        def user(n: int) -> None:
            doc = docs[n % len(docs)]
            question = first_questions[doc.name][n // len(docs)]
            client = Client(base, verbose=False)  # one session per user
            history: list[list[str]] = []
            for turn in range(args.rounds):
                asked = question if turn == 0 else FOLLOW_UP
                start = time.perf_counter()
                try:
                    result = client.predict(question=asked, history=history, api_name="/ask")
                except Exception as exc:  # count it, keep going
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                elapsed = (time.perf_counter() - start) * 1000
                sources = {Path(c["source"]).name for c in result["citations"]}
                with lock:
                    latencies.append(elapsed)
                    if turn:
                        kind = "declined" if result["abstained"] else "own" if doc.name in sources else "other"
                        follow_ups[kind] += 1
                history.append([asked, result["answer"]])

        start = time.perf_counter()
        threads = [threading.Thread(target=user, args=(n,)) for n in range(args.users)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.timeout * args.rounds)
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()

    latencies.sort()
    out = {
        "users": args.users,
        "questions": args.users * args.rounds,
        "errors": len(errors),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p95_ms": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1) if latencies else None,
        "answers_per_s": round(len(latencies) / wall, 2),
        "follow_ups_in_own_conversation": follow_ups["own"],
        "follow_ups_declined": follow_ups["declined"],
        "follow_ups_citing_another_users_article": follow_ups["other"],
        "load_average": round(os.getloadavg()[0], 1),
        "first_errors": errors[:3],
    }
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
