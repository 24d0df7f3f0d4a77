"""Several users asking at once through the served JSON API (`POST /api/ask`).

Builds a small index (a few SQuAD v2 dev articles) in a temporary folder, starts
`python -m assistant serve` on a free loopback port, and lets `--users` clients each ask
`--questions` distinct questions back to back (bounded in count and time; loopback only).
Prints latency percentiles, throughput and the number of failed requests.

    python bench/concurrent_chat.py --json [--users 4] [--questions 10]
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, question: str, timeout: float) -> dict:
    body = json.dumps({"question": question}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--questions", type=int, default=10, help="per user")
    parser.add_argument("--articles", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    args = parser.parse_args()

    docs = sorted((DATA / "docs").glob("*.txt"))[: args.articles]
    names = {p.name for p in docs}
    questions = [
        rec["question"]
        for rec in map(json.loads, (DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines())
        if rec["document"] in names
    ]
    need = args.users * args.questions
    if len(questions) < need:
        raise SystemExit(f"only {len(questions)} questions for {need} requests; use more --articles")

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
        post(f"{base}/api/ask", questions[-1], args.timeout)  # warm

        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()

        def user(n: int) -> None:
            for q in questions[n * args.questions : (n + 1) * args.questions]:
                start = time.perf_counter()
                try:
                    answer = post(f"{base}/api/ask", q, args.timeout)
                    ok = "answer" in answer
                except Exception as exc:  # count it, keep going
                    ok, answer = False, {"error": f"{type(exc).__name__}: {exc}"}
                with lock:
                    if ok:
                        latencies.append((time.perf_counter() - start) * 1000)
                    else:
                        failures.append(str(answer.get("error"))[:200])

        start = time.perf_counter()
        threads = [threading.Thread(target=user, args=(n,)) for n in range(args.users)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
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
        "requests": need,
        "failed": len(failures),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p95_ms": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1) if latencies else None,
        "answers_per_s": round(len(latencies) / wall, 2),
        "load_average": round(os.getloadavg()[0], 1),
        "first_failures": failures[:3],
    }
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
