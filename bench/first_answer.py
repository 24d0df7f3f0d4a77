"""Time to a first answer in a fresh process, and warm answer latency.

Builds a small index (a few SQuAD v2 dev articles) in a temporary folder, then runs
`python -m assistant ask` in fresh subprocesses several times (median wall time, process start
included), and finally answers distinct questions in one warm process (p50/p95). The CPU time of the fresh processes is
reported too: on a shared machine wall time mostly measures the other processes.

Each figure is given for the reader generator (the default) and the extractive one, interleaved
in the same run, with their ratio.

    python bench/first_answer.py --json [--runs 5] [--articles 3] [--questions 30] [--generators reader,extractive]
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
    parser.add_argument("--generators", default="reader,extractive", help="compared in the same run")
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

    names = args.generators.split(",")
    first: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for run in range(args.runs):
        for name in names:  # interleaved, so both generators see the same load
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run(
                [*cmd, "ask", questions[run % len(questions)], "--json"],
                env={**env, "ASSISTANT_GENERATOR": name},
                capture_output=True,
                text=True,
            )
            first[name].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            if done.returncode != 0:
                raise SystemExit(f"ask failed: {done.stderr.strip()}")
            assert json.loads(done.stdout)["generator"] == name

    from assistant.pipeline import Assistant

    base = Assistant(index_dir=index_dir)
    variants = {n: base.with_generator(n) for n in names}
    for a in variants.values():
        a.answer(questions[0])
    warm: dict[str, list[float]] = {n: [] for n in names}
    for q in questions[1 : 1 + args.questions]:
        for name, a in variants.items():
            start = time.perf_counter()
            a.answer(q)
            warm[name].append((time.perf_counter() - start) * 1000)
    out: dict = {"load_average": round(os.getloadavg()[0], 1), "index_chunks": base.store.count()}
    for name in names:
        times = sorted(warm[name])
        out[name] = {
            "first_ask_s": round(statistics.median(first[name]), 2),
            "first_ask_runs_s": [round(x, 2) for x in first[name]],
            "first_ask_cpu_s": round(statistics.median(cpu[name]), 2),  # what load cannot inflate
            "warm_p50_ms": round(statistics.median(times), 1),
            "warm_p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1),
            "warm_questions": len(times),
        }
    if len(names) == 2:
        a, b = names
        out[f"first_ask_{a}_over_{b}"] = round(out[a]["first_ask_s"] / out[b]["first_ask_s"], 2)
        out[f"first_ask_cpu_{a}_over_{b}"] = round(out[a]["first_ask_cpu_s"] / out[b]["first_ask_cpu_s"], 2)
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
