"""Which embedding variant documents are indexed with: speed and retrieval quality against float32.

For each variant (`assistant.embedding_graph.VARIANTS`, built from the packaged weights without
torch) this prints, in one run on this CPU:

* passages/s embedding SciFact abstracts (~240 word pieces each) with the product's threads: wall
  time, and per CPU-second of the process (steadier on a shared machine); the median of `--rounds`
  rounds, every variant (and torch) timed once per round, in turn, so load hits them alike;
* SciFact nDCG@10 (BEIR test queries, dense retrieval alone, questions in float32 as the product
  embeds them) on a corpus of every judged abstract plus the first `--limit` others;
* whether the top-4 dense passages of the bundled article's questions are float32's (as a set,
  and in the same order);
* with `--torch`, sentence-transformers float32 (and bfloat16 where the CPU has it), padded
  batches of 64, as the rate the product had before, in the same rounds; `vs_torch` is each
  variant's rate over it.

    python bench/embedding_variants.py --json [--limit 1000] [--speed-passages 64] [--rounds 5] [--torch]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import DATA, ROOT


def cpu_flags() -> dict:
    """The CPU model and the vector extensions that decide which int8 / bf16 kernels run."""
    model, flags = "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ["avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"]
    return {"model": model, "flags": [f for f in wanted if f in flags], "cores": os.cpu_count()}


def scifact(limit: int):
    corpus = {}
    with open(DATA / "scifact" / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            corpus[rec["_id"]] = f"{rec['title']}\n\n{rec['text']}"
    qrels: dict[str, dict[str, int]] = {}
    for line in (DATA / "scifact" / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, s = line.split("\t")
        qrels.setdefault(q, {})[d] = int(s)
    queries = {}
    with open(DATA / "scifact" / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["_id"] in qrels:
                queries[rec["_id"]] = rec["text"]
    judged = {d for r in qrels.values() for d in r}
    others = [d for d in corpus if d not in judged][:limit]
    ids = sorted(judged & corpus.keys()) + others
    return ids, [corpus[i] for i in ids], queries, qrels


def ndcg10(doc_vectors, doc_ids, query_vectors, query_ids, qrels) -> float:
    scores = query_vectors @ doc_vectors.T
    total = 0.0
    for row, q in enumerate(query_ids):
        top = np.argsort(-scores[row])[:10]
        gains = [qrels[q].get(doc_ids[i], 0) for i in top]
        dcg = sum(g / np.log2(r + 2) for r, g in enumerate(gains))
        ideal = sorted(qrels[q].values(), reverse=True)[:10]
        total += dcg / sum(g / np.log2(r + 2) for r, g in enumerate(ideal))
    return total / len(query_ids)


def seed_top4(encoder, query_encoder) -> list[list[int]]:
    """The top-4 dense passages (chunk order numbers) of the bundled article for each example question."""
    from llm_grounding import SEED_QUESTIONS

    from assistant.embedding import Embedder
    from assistant.ingest.chunking import Chunker
    from assistant.ingest.loading import iter_files, load_file
    from assistant.settings import Settings

    s = Settings()
    counter = Embedder()
    chunker = Chunker(counter.count_tokens, s.chunk_tokens, s.chunk_overlap_tokens, limit=counter.max_seq_length)
    chunks = [c for p in iter_files([ROOT / "seeds"]) for c in chunker.split(load_file(p))]
    docs = encoder.encode([c.text for c in chunks])
    questions = query_encoder.encode(list(SEED_QUESTIONS))
    return [list(map(int, np.argsort(-(docs @ q))[:4])) for q in questions], len(chunks)


def timed(encode, texts: list[str]) -> tuple[float, float]:
    """One round: (passages per wall second, passages per CPU-second of the process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    encode(texts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(texts) / wall, len(texts) / cpu


def speeds(encoders: dict, texts: list[str], rounds: int) -> dict:
    """Each encoder timed once per round, in turn (after one warm-up call each); medians and rounds."""
    for encode in encoders.values():
        encode(texts[:8])
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in encoders}
    for _ in range(rounds):
        for name, encode in encoders.items():
            runs[name].append(timed(encode, texts))
    return {
        name: {
            "passages_per_s": round(statistics.median(w for w, _ in rows), 2),
            "passages_per_cpu_s": round(statistics.median(c for _, c in rows), 2),
            "rounds_per_cpu_s": [round(c, 2) for _, c in rows],
        }
        for name, rows in runs.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--limit", type=int, default=1000, help="unjudged SciFact abstracts added to the judged ones")
    parser.add_argument("--speed-passages", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="speed rounds (the median is reported)")
    parser.add_argument("--speed-only", action="store_true", help="skip the retrieval-quality part")
    parser.add_argument("--variants", default=None, help="comma-separated (default: all)")
    parser.add_argument("--torch", action="store_true", help="also time sentence-transformers (needs torch)")
    parser.add_argument("--cache", type=Path, default=None, help="where variants are built (default: a temp dir)")
    args = parser.parse_args()

    from assistant.embedding import Embedder
    from assistant.embedding_graph import VARIANTS

    cache = args.cache or Path(tempfile.mkdtemp(prefix="bench-variants-"))
    variants = args.variants.split(",") if args.variants else list(VARIANTS)
    ids, texts, queries, qrels = scifact(args.limit)
    query_ids = list(queries)
    timing_texts = texts[: args.speed_passages]
    out: dict = {"cpu": cpu_flags(), "scifact_corpus": len(ids), "scifact_queries": len(query_ids), "variants": {}}

    embedders = {v: Embedder(cache_dir=cache, precision=v) for v in variants}
    encoders = {v: e.encode for v, e in embedders.items()}
    if args.torch:
        encoders.update(torch_encoders())
    rates = speeds(encoders, timing_texts, args.rounds)
    out["speed"] = {"passages": len(timing_texts), "threads": embedders[variants[0]].threads, "rounds": args.rounds}
    out["torch"] = {}
    for name, rate in rates.items():
        for base, label in (("float32", "vs_float32"), ("torch-float32", "vs_torch")):
            if base in rates:
                rate[f"{label}_cpu"] = round(rate["passages_per_cpu_s"] / rates[base]["passages_per_cpu_s"], 2)
                rate[f"{label}_wall"] = round(rate["passages_per_s"] / rates[base]["passages_per_s"], 2)
        out["variants" if name in embedders else "torch"][name.removeprefix("torch-")] = {"speed": rate}
    print(json.dumps({"speed": rates}), file=sys.stderr, flush=True)
    if args.speed_only:
        print(json.dumps(out) if args.json else json.dumps(out, indent=1))
        return 0

    reference = embedders.get("float32") or Embedder(cache_dir=cache, precision="float32")
    qvec = reference.encode_queries([queries[q] for q in query_ids])
    base_top4, n_chunks = seed_top4(reference, reference.query_encoder)
    out["seed_chunks"] = n_chunks
    for variant, embedder in embedders.items():
        row = out["variants"][variant]
        row["recorded_as"] = embedder.recorded_variant
        start = time.perf_counter()
        vectors = embedder.encode(texts)
        row["scifact_encode_s"] = round(time.perf_counter() - start, 1)
        row["ndcg@10"] = round(ndcg10(vectors, ids, qvec, query_ids, qrels), 4)
        same = embedder.document_encoder.encode([queries[q] for q in query_ids])
        row["ndcg@10_questions_same_variant"] = round(ndcg10(vectors, ids, same, query_ids, qrels), 4)
        top4, _ = seed_top4(embedder, reference.query_encoder)
        row["seed_top4_same_passages"] = all(set(a) == set(b) for a, b in zip(top4, base_top4, strict=True))
        row["seed_top1_same"] = sum(a[0] == b[0] for a, b in zip(top4, base_top4, strict=True))
        row["seed_top4_same_order"] = sum(a == b for a, b in zip(top4, base_top4, strict=True))
        row["seed_questions"] = len(base_top4)
        print(json.dumps({variant: row}), file=sys.stderr, flush=True)
    f32 = out["variants"].get("float32")
    if f32:
        for row in out["variants"].values():
            row["ndcg_drop"] = round(f32["ndcg@10"] - row["ndcg@10"], 4)
            row["passes_gate"] = row["ndcg_drop"] <= 0.005 and row["seed_top4_same_passages"]
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))
    return 0


def torch_encoders() -> dict:
    """sentence-transformers as the product ran it before: float32 (and bfloat16 where native),
    padded batches of 64, torch's own threads (one per core)."""
    import torch
    from sentence_transformers import SentenceTransformer

    from assistant.embedding import default_model_path

    def loaded(dtype):
        model = SentenceTransformer(str(default_model_path()), device="cpu").to(dtype)
        model.max_seq_length = 256
        return lambda texts: model.encode(texts, batch_size=64, show_progress_bar=False)

    encoders = {"torch-float32": loaded(torch.float32)}
    if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
        encoders["torch-bfloat16"] = loaded(torch.bfloat16)
    return encoders


if __name__ == "__main__":
    sys.exit(main())
