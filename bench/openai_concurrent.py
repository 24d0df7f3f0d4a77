"""Many users chatting at once through the OpenAI-compatible endpoint, each with its own `openai` client.

Builds a small index (several SQuAD v2 dev articles) in a temporary folder, starts
`python -m assistant serve` on a free loopback port with an API key, and runs `--users`
simultaneous `openai.OpenAI` clients against `/v1/chat/completions`. Each user keeps its own
conversation about one article: a question from it, then `--rounds - 1` follow-ups that name
their own topic (other questions about the same article), sent with the user's whole history;
every other turn streams. A follow-up citing another user's article would mean conversations
mixed (cross-talk); errors count every failed request. Bounded in count and time; loopback only.

    python bench/openai_concurrent.py --json [--users 20] [--rounds 2]
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
KEY = "sk-bench-local"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(client, messages: list[dict], stream: bool) -> tuple[str, list[dict], bool]:
    """One turn: (answer text, citations, declined), plain or streamed."""
    if not stream:
        r = client.chat.completions.create(model="assistant", messages=messages)
        return r.choices[0].message.content, r.model_extra["citations"], r.model_extra["abstained"]
    text, last = "", None
    for chunk in client.chat.completions.create(model="assistant", messages=messages, stream=True):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            if chunk.choices[0].finish_reason:
                last = chunk
    if last is None:
        raise RuntimeError("the stream ended without a finishing chunk")
    return text, last.model_extra["citations"], last.model_extra["abstained"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="turns per user, each about the user's own article")
    parser.add_argument("--articles", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per request")
    args = parser.parse_args()

    from openai import OpenAI

    docs = sorted((DATA / "docs").glob("*.txt"))[: args.articles]
    questions: dict[str, list[str]] = {d.name: [] for d in docs}
    for rec in map(json.loads, (DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines()):
        if rec["document"] in questions and not rec["is_impossible"]:
            questions[rec["document"]].append(rec["question"])

    work = Path(tempfile.mkdtemp(prefix="bench-openai-"))
    env = {**os.environ, **ENV, "ASSISTANT_INDEX_DIR": str(work / "index"), "PYTHONPATH": str(ROOT),
           "ASSISTANT_API_KEY": KEY}  # fmt: skip
    cmd = [sys.executable, "-m", "assistant"]
    subprocess.run([*cmd, "index", *map(str, docs), "--json"], env=env, check=True, capture_output=True)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(work / "server.log", "wb") as log:
        server = subprocess.Popen([*cmd, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    latencies: list[float] = []
    errors: list[str] = []
    turns = {"own": 0, "declined": 0, "other": 0}
    lock = threading.Lock()
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

        def user(n: int) -> None:
            doc = docs[n % len(docs)]
            own = questions[doc.name][(n // len(docs)) * args.rounds :]
            client = OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0, timeout=args.timeout)
            messages: list[dict] = []
            for turn in range(args.rounds):
                messages.append({"role": "user", "content": own[turn % len(own)]})
                start = time.perf_counter()
                try:
                    text, citations, declined = ask(client, messages, stream=turn % 2 == 1)
                except Exception as exc:  # count it, keep going
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    messages.pop()
                    continue
                elapsed = (time.perf_counter() - start) * 1000
                sources = {Path(c["source"]).name for c in citations}
                kind = "declined" if declined else "own" if sources <= {doc.name} else "other"
                with lock:
                    latencies.append(elapsed)
                    if turn:  # a follow-up: only the user's own history says what it is about
                        turns[kind] += 1
                messages.append({"role": "assistant", "content": text})

        start = time.perf_counter()
        threads = [threading.Thread(target=user, args=(n,)) for n in range(args.users)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.timeout * args.rounds)
        wall = time.perf_counter() - start
        server_errors = sum("error" in line.lower() for line in (work / "server.log").read_text().splitlines())
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()

    latencies.sort()
    out = {
        "users": args.users,
        "requests": args.users * args.rounds,
        "errors": len(errors),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p95_ms": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1) if latencies else None,
        "answers_per_s": round(len(latencies) / wall, 2),
        "follow_ups_in_own_conversation": turns["own"],
        "follow_ups_declined": turns["declined"],
        "follow_ups_citing_another_users_article": turns["other"],
        "server_log_error_lines": server_errors,
        "load_average": round(os.getloadavg()[0], 1),
        "first_errors": errors[:3],
    }
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
