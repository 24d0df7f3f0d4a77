"""Time to a first answer in a fresh process, and warm answer latency.

Builds a small index (a few SQuAD v2 dev articles) in a temporary folder, then runs
`python -m assistant ask` in fresh subprocesses several times (median wall time, process start
included), and finally answers distinct questions in one warm process (p50/p95). The CPU time of the fresh processes is
reported too: on a shared machine wall time mostly measures the other processes.

    python bench/first_answer.py --json [--runs 5] [--articles 3] [--questions 30]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DATA, ENV, ROOT

DATA = DATA / "squad-v2-dev"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--articles", type=int, default=3)
    parser.add_argument("--questions", type=int, default=30)
    args = parser.parse_args()

    docs = sorted((DATA / "docs").glob("*.txt"))[: args.articles]
    names = {p.stem for p in docs}
    questions = []
    with open(DATA / "questions.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["document"] in names or Path(rec["document"]).stem in names:
                questions.append(rec["question"])
    if not questions:
        raise SystemExit("no questions found for the chosen articles")

    work = Path(tempfile.mkdtemp(prefix="bench-first-"))
    index_dir = work / "index"
    env = {**os.environ, **ENV, "ASSISTANT_INDEX_DIR": str(index_dir), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "assistant"]
    subprocess.run([*cmd, "index", *map(str, docs), "--json"], env=env, check=True, capture_output=True)

    first: list[float] = []
    cpu: list[float] = []
    for run in range(args.runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(
            [*cmd, "ask", questions[run % len(questions)], "--json"], env=env, capture_output=True, text=True
        )
        first.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"ask failed: {done.stderr.strip()}")
        json.loads(done.stdout)

    from assistant.pipeline import Assistant

    assistant = Assistant(index_dir=index_dir)
    assistant.answer(questions[0])
    warm: list[float] = []
    for q in questions[1 : 1 + args.questions]:
        start = time.perf_counter()
        assistant.answer(q)
        warm.append((time.perf_counter() - start) * 1000)
    warm.sort()
    out = {
        "first_ask_s": round(statistics.median(first), 2),
        "first_ask_runs_s": [round(x, 2) for x in first],
        "first_ask_cpu_s": round(statistics.median(cpu), 2),  # CPU time of the process: what load cannot inflate
        "load_average": round(os.getloadavg()[0], 1),
        "warm_p50_ms": round(statistics.median(warm), 1),
        "warm_p95_ms": round(warm[min(len(warm) - 1, int(0.95 * len(warm)))], 1),
        "warm_questions": len(warm),
        "index_chunks": assistant.store.count(),
    }
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
