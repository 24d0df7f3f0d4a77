"""Indexing throughput against its limit (the bare model) and against LangChain's textbook pipeline.

Indexes the SQuAD v2 dev articles (files) plus the SciFact abstracts (one document per abstract,
through `Indexer.index_documents`) into a fresh temporary index, then in the same run measures:

* raw: `Embedder.encode` alone on exactly our chunk texts, with the same build (model and
  variant) the indexer embeds with, in the same worker processes (the ceiling: indexing overlaps
  its writes with it);
* textbook: RecursiveCharacterTextSplitter(1000, 200) + HuggingFaceEmbeddings +
  Chroma.from_documents on the same documents, as the textbook writes it (float32);
* re-indexing the unchanged corpus.

Every model is loaded, and what a process's first indexing run loads once (the store, the
keyword index's libraries) is warmed by a tiny run into a throwaway index (`warm_up_s`), before
the clock starts. The work is done in rounds (SQuAD, then parts of SciFact), each pipeline taking
its turn within a round in rotating order, so the load of a shared machine falls on all three
alike; CPU-time ratios are printed too (this process's and its workers'), and each round's. The textbook pipeline cuts
different chunks, so speeds are compared in characters of source text indexed per second;
`textbook_chunks_per_s` expresses that in chunk-equivalents (our mean chunk size).

    python bench/index_throughput.py --json [--scifact-limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import DATA, cpu_seconds
from embedding_variants import cpu_flags


def scifact_documents(limit: int | None):
    from assistant.schema import Document

    docs = []
    with open(DATA / "scifact" / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            docs.append(Document(source=f"scifact/{rec['_id']}", text=f"{rec['title']}\n\n{rec['text']}"))
            if limit and len(docs) >= limit:
                break
    return docs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--scifact-limit", type=int, help="only the first N SciFact abstracts (default: all)")
    parser.add_argument("--skip-textbook", action="store_true")
    parser.add_argument("--squad-files", type=int, help="only the first N SQuAD articles (default: all 18)")
    parser.add_argument("--rounds", type=int, default=4, help="SQuAD, then the abstracts in this many - 1 parts")
    args = parser.parse_args()

    from assistant.embedding import Embedder
    from assistant.index.indexing import Indexer
    from assistant.index.store import Store
    from assistant.ingest.loading import iter_files, load_file
    from assistant.schema import Document
    from assistant.settings import Settings

    squad = DATA / "squad-v2-dev" / "docs"
    if args.squad_files:  # a smaller folder: the first N articles
        small = Path(tempfile.mkdtemp(prefix="bench-squad-"))
        for path in sorted(squad.iterdir())[: args.squad_files]:
            shutil.copy(path, small / path.name)
        squad = small
    scifact = scifact_documents(args.scifact_limit)
    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    settings = Settings.from_env(index_dir=work / "ours", progress=False)
    embedder = Embedder(batch_size=settings.batch_size, precision=settings.embed_precision)
    indexer = Indexer(Store(settings), embedder, settings)
    _ = embedder.document_encoder  # every model is loaded outside the clock; so is what the first
    start = time.perf_counter()  # indexing run of a process loads once (Chroma, the keyword index's
    indexer.store.count()  # libraries and stemmer): a tiny run into a throwaway index (printed apart),
    workers = embedder.start_workers()  # and the embedding workers a long run starts (both sides use them)
    warm = Settings.from_env(index_dir=work / "warm-up", progress=False)
    Indexer(Store(warm), embedder, warm).index_documents([Document("warm-up", "A warm-up sentence. And another.")])
    warm_up_s = time.perf_counter() - start

    # Round 0 is the SQuAD folder (indexed as files); the SciFact abstracts are split into the
    # other rounds. In every round all pipelines run back to back, in a rotating order, so a busy
    # machine slows them alike: the ratios are what this measures.
    squad_docs = [d for d in (load_file(p) for p in iter_files([squad])) if hasattr(d, "text")]
    size = max(1, -(-len(scifact) // max(1, args.rounds - 1)))
    rounds = [squad_docs] + [scifact[i : i + size] for i in range(0, len(scifact), size)]
    documents = [d for r in rounds for d in r]
    texts = [[c.text for d in r for c in indexer.chunker.split(d)] for r in rounds]
    source_chars = sum(len(d.text) for d in documents)

    default_threads = os.cpu_count() or 1
    embedder.encode(texts[0][:8])
    book = None if args.skip_textbook else Textbook(work / "textbook")

    def ours(n: int) -> None:
        indexer.index([squad]) if n == 0 else indexer.index_documents(rounds[n])

    def raw(n: int) -> None:
        embedder.encode(texts[n])  # the very build the indexer calls

    steps = {"ours": ours, "raw": raw} | ({"textbook": lambda n: book.add(rounds[n])} if book else {})
    wall = dict.fromkeys(steps, 0.0)
    cpu = dict.fromkeys(steps, 0.0)
    here = dict.fromkeys(steps, 0.0)  # CPU of this process alone: with the workers, all but the model's
    per_round = []  # raw / ours per round: how much the machine's load moved the figure
    names = list(steps)
    for n in range(len(rounds)):
        took = {}
        for name in names[n % len(names) :] + names[: n % len(names)]:
            w, c, h = time.perf_counter(), cpu_seconds(), time.process_time()
            steps[name](n)
            took[name] = (time.perf_counter() - w, cpu_seconds() - c)
            wall[name] += took[name][0]
            cpu[name] += took[name][1]
            here[name] += time.process_time() - h
        per_round.append([round(took["raw"][k] / took["ours"][k], 3) for k in (0, 1)])

    start = time.perf_counter()
    again = indexer.index([squad])
    again_sf = indexer.index_documents(scifact)
    reindex_s = time.perf_counter() - start
    assert again.embedded == 0 and again_sf.embedded == 0, "re-indexing unchanged documents embedded something"

    n_chunks = sum(map(len, texts))
    first_s = wall["ours"]
    out = {
        "chunks": again_sf.chunks,
        "documents": len(documents),
        "source_chars": source_chars,
        "rounds": len(rounds),
        "first_index_s": round(first_s, 2),
        "chunks_per_s": round(n_chunks / first_s, 2),
        "raw_encode_per_s": round(n_chunks / wall["raw"], 2),
        "ratio_to_raw": round(wall["raw"] / first_s, 3),
        "ratio_to_raw_cpu": round(cpu["raw"] / cpu["ours"], 3),
        "ratio_to_raw_per_round": per_round,  # [wall, cpu] of each round
        "warm_up_s": round(warm_up_s, 2),
        "embedding_workers": workers,
    }
    if workers:  # the model runs in the workers: this process's CPU is everything else indexing does
        model = cpu["ours"] - here["ours"]
        other = here["ours"] - here["raw"]  # less what handing texts to the workers costs raw too
        out.update(
            {
                "model_cpu_s": round(model, 2),
                "other_cpu_s": round(other, 2),
                "other_share_of_model": round(other / model, 3),
                # both cores busy: wall >= (model + other) / cores, so the ratio cannot pass this
                "cpu_bound_ratio": round(model / (model + other), 3),
            }
        )
    if book:
        chars_per_chunk = source_chars / n_chunks
        out.update(
            {
                "textbook_s": round(wall["textbook"], 2),
                "textbook_chunks": book.chunks,
                "textbook_chunks_per_s": round(source_chars / wall["textbook"] / chars_per_chunk, 2),
                "ratio_to_textbook": round(wall["textbook"] / first_s, 3),
                "ratio_to_textbook_cpu": round(cpu["textbook"] / cpu["ours"], 3),
            }
        )
    out.update(
        {
            "reindex_unchanged_s": round(reindex_s, 3),
            "reindex_share_of_first": round(reindex_s / first_s, 4),
            "normalisation": (
                "ratios compare time for the same source text (chars/s), summed over interleaved rounds; "
                "textbook_chunks_per_s is the textbook's source chars/s divided by our mean chars per chunk; "
                "models loaded before timing; *_cpu ratios use process CPU time"
            ),
            "precision": embedder.variant,
            "textbook_precision": "float32",
            "scifact_documents": len(scifact),
            "cores": default_threads,
            "cpu": cpu_flags(),
        }
    )
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    shutil.rmtree(work, ignore_errors=True)
    return 0


class Textbook:
    """LangChain's textbook pipeline: RecursiveCharacterTextSplitter(1000, 200) +
    HuggingFaceEmbeddings + Chroma.from_documents (then add_documents for later rounds)."""

    def __init__(self, folder: Path):
        from langchain_huggingface import HuggingFaceEmbeddings
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        from assistant.embedding import default_model_path

        self.folder = folder
        self.embeddings = HuggingFaceEmbeddings(model_name=str(default_model_path()))
        self.embeddings.embed_documents(["warm up"])
        self.splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
        self.db = None
        self.chunks = 0

    def add(self, documents) -> None:
        from langchain_chroma import Chroma
        from langchain_core.documents import Document as LCDocument

        lc_docs = [LCDocument(page_content=d.text, metadata={"source": d.source}) for d in documents]
        pieces = self.splitter.split_documents(lc_docs)
        self.chunks += len(pieces)
        if self.db is None:
            self.db = Chroma.from_documents(
                pieces, self.embeddings, persist_directory=str(self.folder), collection_name="textbook"
            )
        else:
            self.db.add_documents(pieces)


if __name__ == "__main__":
    sys.exit(main())
