"""Indexing throughput against its limit (the bare model) and against LangChain's textbook pipeline.

Indexes the SQuAD v2 dev articles (files) plus the SciFact abstracts (one document per abstract,
through `Indexer.index_documents`) into a fresh temporary index, then in the same run measures:

* raw: `SentenceTransformer.encode` alone on exactly our chunk texts (the ceiling);
* textbook: RecursiveCharacterTextSplitter(1000, 200) + HuggingFaceEmbeddings +
  Chroma.from_documents on the same documents;
* re-indexing the unchanged corpus.

Every model is loaded before its clock starts. The textbook pipeline cuts different chunks, so
speeds are compared in characters of source text indexed per second; `textbook_chunks_per_s`
expresses that in chunk-equivalents (our mean chunk size), so the two chunk rates are comparable.

    python bench/index_throughput.py --json [--scifact-limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
for key, value in {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(key, value)

DATA = Path("/work/shared/data")


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
    args = parser.parse_args()

    from assistant.embedding import Embedder, default_model_path
    from assistant.indexing import Indexer
    from assistant.loading import iter_files, load_file
    from assistant.settings import Settings
    from assistant.store import Store

    squad = DATA / "squad-v2-dev" / "docs"
    scifact = scifact_documents(args.scifact_limit)
    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    settings = Settings(index_dir=work / "ours", progress=False)
    embedder = Embedder(batch_size=settings.batch_size)
    indexer = Indexer(Store(settings), embedder, settings)
    _ = embedder.model  # load outside the clock, as for the other two

    start = time.perf_counter()
    indexer.index([squad])
    report_sf = indexer.index_documents(scifact)
    first_s = time.perf_counter() - start
    chunks = report_sf.chunks

    start = time.perf_counter()
    again = indexer.index([squad])
    again_sf = indexer.index_documents(scifact)
    reindex_s = time.perf_counter() - start
    assert again.embedded == 0 and again_sf.embedded == 0, "re-indexing unchanged documents embedded something"

    # The same chunk texts, for the raw encoder.
    squad_docs = [d for d in (load_file(p) for p in iter_files([squad])) if hasattr(d, "text")]
    documents = squad_docs + scifact
    texts = [c.text for d in documents for c in indexer.chunker.split(d)]
    source_chars = sum(len(d.text) for d in documents)

    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(default_model_path()), device="cpu")
    model.encode(texts[:8])
    start = time.perf_counter()
    model.encode(texts, batch_size=settings.batch_size, normalize_embeddings=True, convert_to_numpy=True)
    raw_s = time.perf_counter() - start
    del model

    ours_cps = len(texts) / first_s
    out = {
        "chunks": chunks,
        "documents": len(documents),
        "source_chars": source_chars,
        "first_index_s": round(first_s, 2),
        "chunks_per_s": round(ours_cps, 2),
        "raw_encode_per_s": round(len(texts) / raw_s, 2),
        "ratio_to_raw": round(raw_s / first_s, 3),
    }
    if not args.skip_textbook:
        tb_s, tb_chunks = textbook(documents, work / "textbook")
        chars_per_chunk = source_chars / len(texts)
        out.update(
            {
                "textbook_s": round(tb_s, 2),
                "textbook_chunks": tb_chunks,
                "textbook_chunks_per_s": round(source_chars / tb_s / chars_per_chunk, 2),
                "ratio_to_textbook": round(tb_s / first_s, 3),
            }
        )
    out.update(
        {
            "reindex_unchanged_s": round(reindex_s, 3),
            "reindex_share_of_first": round(reindex_s / first_s, 4),
            "normalisation": (
                "ratios compare wall time for the same source text (chars/s); textbook_chunks_per_s is the "
                "textbook's source chars/s divided by our mean chars per chunk; models loaded before timing"
            ),
            "scifact_documents": len(scifact),
            "torch_threads": embedder.threads,
        }
    )
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0


def textbook(documents, folder: Path) -> tuple[float, int]:
    """LangChain's textbook pipeline on the same documents; returns (seconds, chunks)."""
    from langchain_chroma import Chroma
    from langchain_core.documents import Document as LCDocument
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from assistant.embedding import default_model_path

    embeddings = HuggingFaceEmbeddings(model_name=str(default_model_path()))
    embeddings.embed_documents(["warm up"])
    start = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    lc_docs = [LCDocument(page_content=d.text, metadata={"source": d.source}) for d in documents]
    pieces = splitter.split_documents(lc_docs)
    Chroma.from_documents(pieces, embeddings, persist_directory=str(folder), collection_name="textbook")
    return time.perf_counter() - start, len(pieces)


if __name__ == "__main__":
    sys.exit(main())
