"""Warm question latency at scale: retrieval and full answers (hybrid on) over N chunks.

The SQuAD v2 dev articles are indexed for real; the index is then grown to `--chunks` by
copying those chunks under new sources with their stored vectors slightly perturbed (Gaussian
noise, renormalised) instead of embedding for an hour. Texts repeat, so the keyword index has
the real vocabulary at the real size. Questions are SQuAD questions about the indexed articles.

    python bench/query_latency.py --chunks 100000 --json [--questions 60]

Questions about whole documents ("What is <article> about?", "Summarise <article>", answered from the
documents' records) are timed in the same run (`document_questions_answer_p95_ms`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import DATA

DATA = DATA / "squad-v2-dev"


def grow(store, target: int, noise: float, seed: int = 0) -> int:
    """Copy the store's chunks under new sources until it holds `target` chunks."""
    import numpy as np

    from assistant.index.files import FileUpdate
    from assistant.schema import Chunk

    records = store.files()
    stored = store.get_with_vectors([i for r in records.values() for i in r.chunk_ids])
    base = {i: chunk for i, (chunk, _) in stored.items()}
    vectors = {i: vector for i, (_, vector) in stored.items()}
    rng = np.random.default_rng(seed)
    dimension = next(iter(vectors.values())).shape[0]
    total, copy = len(base), 0
    with store.edit() as edit:  # the keyword index follows the edit
        while total < target:
            copy += 1
            updates = []
            for source, record in records.items():
                ids = [i for i in record.chunk_ids if i in base][: target - total]
                if not ids:
                    break
                new = []
                for i in ids:
                    c = base[i]
                    new.append(
                        Chunk(
                            hashlib.sha1(f"{copy}:{i}".encode()).hexdigest()[:24],
                            f"{source}#copy{copy}",
                            c.text,
                            c.start,
                            c.end,
                            c.page,
                        )
                    )
                noisy = rng.normal(0, noise, (len(ids), dimension)).astype(np.float32)
                vecs = np.stack([vectors[i] for i in ids]) + noisy
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                updates.append(FileUpdate(f"{source}#copy{copy}", "synthetic", [c.id for c in new], new, vecs, ()))
                total += len(new)
            edit.write(updates)
    assert store.keyword.generation == store.generation() and len(store.keyword) == total
    return total


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--noise", type=float, default=0.02, help="std of the noise added to copied vectors")
    parser.add_argument("--index-dir", type=Path, help="reuse/keep the index here (default: a temp folder)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--generators", default="reader,extractive", help="answer latency of each, same run")
    args = parser.parse_args()

    from assistant.pipeline import Assistant

    index_dir = args.index_dir or Path(tempfile.mkdtemp(prefix="bench-query-"))
    assistant = Assistant(index_dir=index_dir, progress=False)
    build: dict = {}
    if assistant.store.count() < args.chunks:
        start = time.perf_counter()
        assistant.index([DATA / "docs"])
        build["real_chunks"] = assistant.store.count()
        build["index_real_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        grow(assistant.store, args.chunks, args.noise)
        build["grow_s"] = round(time.perf_counter() - start, 1)

    questions = []
    with open(DATA / "questions.jsonl", encoding="utf-8") as fh:
        for line in fh:
            questions.append(json.loads(line)["question"])
    step = max(1, len(questions) // (args.questions + 5))
    questions = questions[::step][: args.questions + 5]
    for q in questions[:5]:  # warm: model, Chroma, keyword index
        assistant.answer(q)
    names = args.generators.split(",")
    variants = {n: assistant.with_generator(n) for n in names}
    for a in variants.values():
        a.answer(questions[0])
    retrieve: list[float] = []
    answer: dict[str, list[float]] = {n: [] for n in names}
    for q in questions[5:]:
        start = time.perf_counter()
        assistant.retrieve(q)
        retrieve.append((time.perf_counter() - start) * 1000)
    for i, q in enumerate(questions[5:]):
        q = q.rstrip("?") + " ?"  # not a repeat of the retrieval run's query text
        order = list(variants.items())
        for name, a in order[i % len(order) :] + order[: i % len(order)]:
            # interleaved, each first in turn: they share the sentence-vector cache and see the same load
            start = time.perf_counter()
            a.answer(q)
            answer[name].append((time.perf_counter() - start) * 1000)
    # Questions about a whole document (answered from its record), timed like the look-ups above.
    sources = sorted(Path(s).stem.replace("_", " ") for s in assistant.store.records())
    whole = [f"{ask} {name}{end}" for name in sources for ask, end in (("What is", " about?"), ("Summarise", ""))]
    for q in whole[:2]:
        assistant.answer(q)
    documents: list[float] = []
    for q in whole:
        start = time.perf_counter()
        assistant.answer(q)
        documents.append((time.perf_counter() - start) * 1000)
    if documents:
        answer["document_questions"] = documents
    per = {
        f"{name}_answer_{p}_ms": round(percentile(times, p / 100) if p != 50 else statistics.median(times), 1)
        for name, times in answer.items()
        for p in (50, 95)
    }
    out = {
        "chunks": assistant.store.count(),
        "retrieve_p50_ms": round(statistics.median(retrieve), 1),
        "retrieve_p95_ms": round(percentile(retrieve, 0.95), 1),
        **per,
        "rss_mb": round(rss_mb(), 1),
        "questions": len(answer[names[0]]),
        "document_questions": len(documents),
        "synthetic": (
            f"SQuAD dev articles indexed for real, then copied under new sources with vectors perturbed by "
            f"N(0, {args.noise}) and renormalised, up to {args.chunks} chunks; texts reused"
        ),
        **build,
    }
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    if args.index_dir is None:
        shutil.rmtree(index_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
