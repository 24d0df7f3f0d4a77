"""A large index on one machine: build, disk, open time, answer latency with the reader, memory.

Builds an index of `--passages` synthetic passages (SQuAD dev passages repeated, each copy tagged,
in files of 100 passages) whose vectors are generated (random unit vectors: HNSW's hardest case,
no clusters), not encoded, straight through `Store.edit()` as the indexer writes them. Then, in a
fresh process (what a restarted server pays):

* open: the store counted and the keyword index loaded;
* the bundled article indexed into it for real, then changed and re-indexed (one changed file);
* answers with the reader to the article's questions: p50 / p95 latency, wall and CPU time (the
  process's, all threads: steadier than wall time on a shared machine);
* RSS of that process (peak and after answering), the index's size on disk.

    python bench/scale.py --json --passages 100000 [--keep DIR]

1M passages take about 75 minutes of Chroma writes on a 2-core machine (docs/scale.md: built and probed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import DATA, ROOT
from embedding_variants import cpu_flags

PER_FILE = 100


def build(index_dir: Path, passages: int, batch_files: int, ef_construction: int) -> dict:
    from assistant import Assistant
    from assistant.ingest.loading import iter_files, load_file

    a = Assistant(index_dir=index_dir, progress=False)
    a.store.hnsw |= {"ef_construction": ef_construction, "batch_size": 5000, "sync_threshold": 50000}
    base = [c.text for p in iter_files([DATA / "squad-v2-dev" / "docs"]) for c in a.indexer.chunker.split(load_file(p))]
    rng = np.random.default_rng(0)
    dim = a.embedder.dimension
    store = a.store
    start = time.perf_counter()
    try:
        with store.edit() as edit:
            _write(edit, base, passages, batch_files, rng, dim, start)
            raise _ChromaOnly  # not closed: the keyword index is built by `keyword_build`, timed apart
    except _ChromaOnly:
        pass
    return {"passages": store.count(), "chroma_write_s": round(time.perf_counter() - start, 1)}


class _ChromaOnly(Exception):
    """Leaves the build's edit unclosed: its generation stays new, so the keyword index is stale."""


def _write(edit, base: list[str], passages: int, batch_files: int, rng, dim: int, start: float) -> None:
    from assistant.index.files import FileUpdate
    from assistant.ingest.chunking import chunk_id
    from assistant.schema import Chunk

    written = 0
    for first in range(0, passages // PER_FILE, batch_files):
        updates = []
        for f in range(first, min(first + batch_files, passages // PER_FILE)):
            source = f"synthetic/{f:06d}.txt"
            chunks, at = [], 0
            for i in range(PER_FILE):
                text = f"{base[(f * PER_FILE + i) % len(base)]} (copy {f}.{i})"
                chunks.append(Chunk(chunk_id(source, at, at + len(text), text), source, text, at, at + len(text)))
                at += len(text) + 1
            vectors = rng.standard_normal((PER_FILE, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            updates.append(FileUpdate(source, f"hash{f}", [c.id for c in chunks], chunks, vectors, previous=()))
        edit.write(updates)
        written += sum(len(u.new) for u in updates)
        print(json.dumps({"written": written, "s": round(time.perf_counter() - start, 1)}), file=sys.stderr, flush=True)


KEYWORD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
from assistant import Assistant
a = Assistant(index_dir={index!r}, progress=False)
t = time.perf_counter(); a.store.sync_keyword(max_age_s=0)
print(json.dumps({{"keyword_build_s": round(time.perf_counter() - t, 1), "keyword_passages": len(a.store.keyword),
    "keyword_build_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}}))
"""


PROBE = r"""
import json, resource, shutil, sys, time
from pathlib import Path
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
t0 = time.perf_counter()
from assistant import Assistant
from llm_grounding import SEED_QUESTIONS
a = Assistant(index_dir={index!r}, progress=False, generator="reader")
count = a.store.count(); a.store.sync_keyword(max_age_s=0); n_keyword = len(a.store.keyword)
open_s = time.perf_counter() - t0
seed = Path({work!r}) / "seed"; seed.mkdir(exist_ok=True)
doc = seed / "article.txt"; shutil.copy({article!r}, doc)
t = time.perf_counter(); first = a.index([seed]); add_s = time.perf_counter() - t
doc.write_text(doc.read_text() + "\n\nA paragraph added later changes this file, which is indexed again.\n")
t = time.perf_counter(); again = a.index([seed]); reindex_s = time.perf_counter() - t
a.answer("warm up question about the meeting")
times, cpu, cited = [], [], 0
for q in SEED_QUESTIONS * {repeat}:
    t, c = time.perf_counter(), time.process_time(); r = a.answer(q)
    times.append((time.perf_counter() - t) * 1000); cpu.append((time.process_time() - c) * 1000)
    cited += any("article" in c.source for c in r.citations)
times.sort(); cpu.sort()
import numpy as np
def pct(xs):
    xs = sorted(xs); return round(xs[len(xs) // 2], 1), round(xs[int(len(xs) * 0.95) - 1], 1)
def timed(fn):
    t = time.perf_counter(); fn(); return (time.perf_counter() - t) * 1000
rng = np.random.default_rng(1); parts = {{"retrieve": [], "keyword": [], "keyword_scoped": [], "dense": []}}
article = [s for s in a.documents() if "article" in s]
for q in SEED_QUESTIONS * {repeat}:
    v = rng.standard_normal(a.embedder.dimension).astype(np.float32); v /= np.linalg.norm(v)
    parts["retrieve"].append(timed(lambda: a.retrieve(q)))
    parts["keyword"].append(timed(lambda: a.store.keyword_search(q, 40)))
    parts["keyword_scoped"].append(timed(lambda: a.store.keyword_search(q, 40, sources=article)))
    parts["dense"].append(timed(lambda: a.store.dense_search(v, 40)))
parts = {{f"{{k}}_p50_p95_ms": pct(v) for k, v in parts.items()}}
rss = int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) // 1024
print(json.dumps({{"count": count, "keyword_passages": n_keyword, "open_s": round(open_s, 2),
    "add_one_file_s": round(add_s, 2), "reindex_changed_file_s": round(reindex_s, 2),
    "reindex_embedded": again.embedded, "answers": len(times), "answers_citing_article": cited,
    "answer_p50_ms": round(times[len(times) // 2], 1), "answer_p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
    "answer_cpu_p50_ms": round(cpu[len(cpu) // 2], 1), "answer_cpu_p95_ms": round(cpu[int(len(cpu) * 0.95) - 1], 1),
    "rss_mb": rss, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}} | parts))
"""


def _run(code: str) -> dict:
    """Run `code` in a fresh process (what a restarted server pays); its last line of output is JSON."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=7200)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(1)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--batch-files", type=int, default=50, help="files (of 100 passages) per write")
    parser.add_argument("--repeat", type=int, default=3, help="times the article's questions are asked")
    parser.add_argument("--keep", type=Path, help="build into (or reuse) this folder and keep it")
    parser.add_argument("--ef-construction", type=int, default=64, help="HNSW build setting (Chroma's default: 100)")
    parser.add_argument("--build-only", action="store_true", help="build (Chroma, then keyword index), no probe")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    index_dir = work / "index"
    out: dict = {"cpu": cpu_flags()}
    if not (index_dir / "chroma.sqlite3").exists():
        out |= build(index_dir, args.passages, args.batch_files, args.ef_construction)
        print(json.dumps(out), file=sys.stderr, flush=True)
    out |= _run(KEYWORD.format(root=str(ROOT), index=str(index_dir)))
    out["disk_mb"] = round(sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file()) / 1e6, 1)
    code = PROBE.format(
        root=str(ROOT),
        bench=str(Path(__file__).parent),
        index=str(index_dir),
        work=str(work),
        article=str(ROOT / "seeds" / "putin-pezeshkian-ashgabat-s400.txt"),
        repeat=args.repeat,
    )
    if not args.build_only:
        out |= _run(code)
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
