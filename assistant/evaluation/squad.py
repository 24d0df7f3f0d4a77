"""Measured quality: retrieval on a BEIR folder, answers on a question-answering folder.

Both index into a temporary folder that is deleted afterwards, so evaluating never touches the
user's index. The folder's layout picks the evaluation:

- BEIR (`corpus.jsonl`, `queries.jsonl`, `qrels/test.tsv`): every corpus record is indexed as one
  document (its chunks score it by the best of them) and scored with nDCG@10, recall@10/100 and
  MRR@10 over the queries that have relevance labels.
- QA (`docs/`, `questions.jsonl` with `question`, gold `answers`, `is_impossible`): every question
  goes through `Assistant.answer()`; an answer counts when its text contains a gold string
  (`answer_recall`), and its short answer (`Answer.short`) is scored as SQuAD v2 scores a reader:
  `exact_match` and `f1` with the official normalisation, where no short answer (declined, or only
  sentences) means "no answer": 1 for an unanswerable question, 0 for an answerable one; and the two
  halves, `has_answer_f1` and `no_answer_accuracy`.

`--limit` evaluates a deterministic sample (seeded), so two runs compare like with like.
"""

from __future__ import annotations

import csv
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from assistant.errors import EvaluationError
from assistant.evaluation import metrics
from assistant.schema import Document
from assistant.settings import Settings

BEIR_CHUNKS = 150  # chunks retrieved per query: enough to rank 100 distinct documents
CONTEXT_K = 4


def evaluate(path: Path, settings: Settings, *, limit: int | None = None, k: int | None = None) -> dict:
    """Evaluate a BEIR or QA folder in a throw-away index and return the figures."""
    path = Path(path)
    if (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file():
        kind = "beir"
    elif (path / "questions.jsonl").is_file() and (path / "docs").is_dir():
        kind = "qa"
    else:
        raise EvaluationError(
            f"{path} is neither a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) "
            "nor a QA folder (docs/, questions.jsonl)."
        )
    from assistant.pipeline import Assistant

    with tempfile.TemporaryDirectory(prefix="assistant-eval-") as tmp:
        temp = settings.with_(index_dir=Path(tmp), collection="eval", k=k).without("chroma_url")
        assistant = Assistant(temp)
        if kind == "beir":
            return evaluate_beir(assistant, path, limit=limit)
        return evaluate_qa(assistant, path, limit=limit)


# -- BEIR retrieval -------------------------------------------------------------------------------
def evaluate_beir(assistant, folder: Path, *, limit: int | None = None, index: bool = True) -> dict:
    """nDCG@10, recall@10/100, MRR@10 of `assistant`'s retrieval over a BEIR folder."""
    folder = Path(folder)
    if index:
        assistant.indexer.index_documents(list(load_corpus(folder / "corpus.jsonl")))
    queries = {r["_id"]: r["text"] for r in _jsonl(folder / "queries.jsonl")}
    qrels = load_qrels(folder / "qrels" / "test.tsv")
    ids = sample([q for q in queries if q in qrels], limit)
    ndcg, r10, r100, mrr = [], [], [], []
    for qid in _progress(ids, "Queries", assistant.settings.progress):
        ranking = rank_documents(assistant.retrieve(queries[qid], BEIR_CHUNKS))
        rel = qrels[qid]
        ndcg.append(ndcg_at(ranking, rel, 10))
        r10.append(recall_at(ranking, rel, 10))
        r100.append(recall_at(ranking, rel, 100))
        mrr.append(mrr_at(ranking, rel, 10))
    return {
        "queries": len(ids),
        "ndcg@10": _mean(ndcg),
        "recall@10": _mean(r10),
        "recall@100": _mean(r100),
        "mrr@10": _mean(mrr),
    }


def load_corpus(path: Path) -> Iterable[Document]:
    for r in _jsonl(path):
        title, text = (r.get("title") or "").strip(), (r.get("text") or "").strip()
        body = f"{title}\n\n{text}" if title and text else title or text
        if body:
            yield Document(source=str(r["_id"]), text=body)


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if len(row) < 3 or not row[2].strip().lstrip("-").isdigit():
                continue  # the header, or a malformed line
            if int(row[2]) > 0:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def rank_documents(passages) -> list[str]:
    """Document ids best first; a document scores as its best chunk."""
    best: dict[str, float] = {}
    for p in passages:
        if p.chunk.source not in best or p.score > best[p.chunk.source]:
            best[p.chunk.source] = p.score
    return sorted(best, key=lambda s: -best[s])


def ndcg_at(ranking: list[str], rel: dict[str, int], k: int) -> float:
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sum(r / math.log2(i + 2) for i, r in enumerate(sorted(rel.values(), reverse=True)[:k]))
    return dcg / ideal if ideal else 0.0


def recall_at(ranking: list[str], rel: dict[str, int], k: int) -> float:
    return len(set(ranking[:k]) & set(rel)) / len(rel) if rel else 0.0


def mrr_at(ranking: list[str], rel: dict[str, int], k: int) -> float:
    return next((1.0 / (i + 1) for i, d in enumerate(ranking[:k]) if d in rel), 0.0)


# -- question answering ---------------------------------------------------------------------------
def evaluate_qa(assistant, folder: Path, *, limit: int | None = None, index: bool = True) -> dict:
    """Answer, citation and context recall, abstention quality and latency over a QA folder."""
    folder = Path(folder)
    if index:
        assistant.index([folder / "docs"])
    questions = load_questions(folder / "questions.jsonl", limit)
    answered = cited = context = declined_answerable = 0
    abstained_impossible = abstained_total = impossible = 0
    times: list[float] = []
    em: list[float] = []
    f1: list[float] = []
    has_f1: list[float] = []
    no_answer: list[float] = []
    for q in _progress(questions, "Questions", assistant.settings.progress):
        answers = [g for g in q.get("answers") or [] if g]
        passages = assistant.retrieve(q["question"], CONTEXT_K)
        start = time.perf_counter()
        result = assistant.answer(q["question"])
        times.append((time.perf_counter() - start) * 1000)
        short = result.short or ""  # no short answer = "no answer", as SQuAD v2 scores it
        if q.get("is_impossible"):
            impossible += 1
            abstained_impossible += result.abstained
            em.append(metrics.exact_match([], short))
            f1.append(metrics.f1([], short))
            no_answer.append(f1[-1])
        elif answers:
            gold = [g.lower() for g in answers]
            answered += contains_any(result.text, gold) and not result.abstained
            cited += contains_any(" ".join(c.text for c in result.citations), gold)
            context += contains_any(" ".join(p.chunk.text for p in passages), gold)
            declined_answerable += result.abstained
            em.append(metrics.exact_match(answers, short))
            f1.append(metrics.f1(answers, short))
            has_f1.append(f1[-1])
        abstained_total += result.abstained
    answerable = sum(1 for q in questions if not q.get("is_impossible") and q.get("answers"))
    return {
        "questions": len(questions),
        "answer_recall": _ratio(answered, answerable),
        "citation_recall": _ratio(cited, answerable),
        "context_recall@4": _ratio(context, answerable),
        "abstain_precision": _ratio(abstained_impossible, abstained_total),
        "abstain_recall": _ratio(abstained_impossible, impossible),
        "answerable_abstain_rate": _ratio(declined_answerable, answerable),
        "exact_match": _mean(em),
        "f1": _mean(f1),
        "has_answer_f1": _mean(has_f1),
        "no_answer_accuracy": _mean(no_answer),
        "p50_ms": _percentile(times, 50),
        "p95_ms": _percentile(times, 95),
    }


def load_questions(path: Path, limit: int | None = None) -> list[dict]:
    rows = [r for r in _jsonl(path) if r.get("question")]
    by_id = {str(r.get("id", i)): r for i, r in enumerate(rows)}
    return [by_id[i] for i in sample(list(by_id), limit)]


def contains_any(text: str, gold: list[str]) -> bool:
    text = text.lower()
    return any(g in text for g in gold)


# -- helpers --------------------------------------------------------------------------------------
def sample(ids: list[str], limit: int | None) -> list[str]:
    """A deterministic sample (seeded), in the original order; everything when `limit` is None."""
    if limit is None or limit >= len(ids):
        return list(ids)
    chosen = set(random.Random(0).sample(range(len(ids)), max(0, limit)))
    return [x for i, x in enumerate(ids) if i in chosen]


def _jsonl(path: Path) -> Iterable[dict]:
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise EvaluationError(f"{path}, line {number}: not a JSON record.") from None
            yield record


def _progress(items: list, desc: str, show: bool):
    from tqdm import tqdm

    return tqdm(items, desc=desc, file=sys.stderr, disable=not show, leave=False)


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo), 1)
