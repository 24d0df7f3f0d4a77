"""Chooses the reader generator's thresholds through the whole pipeline, and prints the figures as JSON.

1. Index the SQuAD v2 dev articles (all 18, as `assistant eval` does) into a temporary folder.
2. For every question of the reader's calibration and held-out articles (the split is in the model's
   config.json; the reader never trained on either; `--heldout N` samples), retrieve the
   top-k passages and record what `ReaderGenerator.judge` sees: the evidence model's "no answer"
   probability, the reader's answer probability and span, and both possible answers (short answer
   with its sentence, or the extractive sentences).
3. Grid-search `decide`'s thresholds on all these articles for the best mean of overall SQuAD v2
   F1 and has-answer F1 on `Answer.short` (see `search`), keeping answerable questions declined at
   most `--max-answerable` (0.05) and abstain precision at least 0.80. Two articles' worth of
   questions chose noisy thresholds; eight choose steadier ones, and leaving one article out at a
   time (`crossvalidate`) still says what they give on an article never seen. Report those
   figures, the chosen thresholds' and the current ones' on all articles, and how many SciFact
   claims (statements from another field, which these articles do not answer) are declined.

`--write` saves the chosen thresholds with the model (the `thresholds` section of its config.json),
where `generation/decline.py` loads them from.

    .venv/bin/python bench/calibrate_reader.py [--heldout N] [--calibration N] [--records FILE] [--model DIR] [--write]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from _common import DATA

from assistant.evaluation import metrics
from assistant.evaluation.squad import _jsonl, contains_any
from assistant.generation import decline
from assistant.generation import reader as reading_generator
from assistant.settings import Settings

SQUAD = DATA / "squad-v2-dev"
GRID = {
    "retrieval_weight": [0.0, 1.0, 2.0, 3.0, 4.0],
    "short_at": [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7],
    "doubt_at": [0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75],
    "no_span_below": [0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35],
}


def collect(args) -> list[dict]:
    """One record per question: gold, article part, the two probabilities, the two possible answer texts."""
    from assistant.pipeline import Assistant
    from assistant.reading.reader import DEFAULT_MODEL_DIR

    model_dir = Path(args.model) if args.model else DEFAULT_MODEL_DIR
    split = json.loads((model_dir / "config.json").read_text())["squad2_articles"]
    parts = {f"{name}.txt": part for part in ("calibration", "heldout") for name in split[part]}
    rows = [r for r in _jsonl(SQUAD / "questions.jsonl") if r["document"] in parts]
    claims = random.Random(0).sample(list(_jsonl(DATA / "scifact" / "queries.jsonl")), args.claims)
    for c in claims:  # statements from another field: nothing in these articles answers them
        parts[f"claim:{c['_id']}"] = "claims"
        rows.append(
            {"id": f"claim:{c['_id']}", "question": c["text"], "is_impossible": True, "document": f"claim:{c['_id']}"}
        )
    held = [r for r in rows if parts[r["document"]] == "heldout"]
    cal = [r for r in rows if parts[r["document"]] == "calibration"]
    keep = {r["id"] for r in random.Random(0).sample(cal, min(args.calibration, len(cal)))}
    keep |= {r["id"] for r in random.Random(0).sample(held, min(args.heldout, len(held)))}
    keep |= {r["id"] for r in rows if parts[r["document"]] == "claims"}
    out = []
    with tempfile.TemporaryDirectory(prefix="calibrate-reader-") as tmp:
        settings = Settings.from_env(index_dir=Path(tmp), collection="calibrate", progress=False, reader_dir=model_dir)
        assistant = Assistant(settings)
        assistant.index([SQUAD / "docs"])
        generator = assistant.reader
        for i, r in enumerate(x for x in rows if x["id"] in keep):
            passages = assistant.retrieve(r["question"])
            ranked, evidence = generator.evidence.analyse(r["question"], passages)
            no_answer = decline.no_answer_probability(evidence)
            result = generator.reader.read(r["question"], [p.chunk.text for p in passages])
            sentences = generator.evidence.compose(ranked, passages).text if ranked else ""
            chosen = generator.evidence.choose(ranked) if ranked else []
            spans = []
            for span in result.spans:
                usable = decline.usable_probability(span)
                found = reading_generator.short_answer(span) if usable else None
                spans.append(
                    {
                        "p": span.probability,
                        "usable": usable,
                        "dense": passages[span.passage_index].dense,
                        "short": found.text if found else "",
                        "short_text": reading_generator.compose_short(found, passages, chosen).text if found else "",
                    }
                )
            out.append(
                {
                    "part": parts[r["document"]],
                    "article": r["document"],
                    "question": r["question"],
                    "impossible": bool(r["is_impossible"]),
                    "answers": [a for a in r.get("answers") or [] if a],
                    "no_answer": no_answer,
                    "spans": spans,
                    "sentences": sentences,
                    "has_ranked": bool(ranked),
                    "named": decline.is_named(evidence),
                }
            )
            if i % 100 == 0:
                print(f"{i} questions", file=sys.stderr, flush=True)
    return out


def outcome(rec: dict, th: decline.Thresholds) -> str:
    """The action `ReaderGenerator` takes on a record under thresholds `th`: decline, sentences or short."""
    if not rec["has_ranked"]:
        return "decline"
    probability = _scored(rec, th.retrieval_weight)["p"]
    return decline.decide(rec["no_answer"], probability, named=rec["named"], at=th).action


def _scored(rec: dict, weight: float) -> dict:
    """The span `pick` chooses at this retrieval weight, scored against the gold answers once.

    Memoised in the record: the grid search asks for each of a few weights thousands of times.
    """
    memo = rec.setdefault("_scored", {})
    if weight not in memo:
        score = lambda s: reading_generator.span_score(s["p"], s["dense"], weight)  # noqa: E731
        best = max(rec["spans"], key=score, default=None)
        golds = [] if rec["impossible"] else rec["answers"]
        short = best["short"] if best else ""
        found = lambda text: bool(golds) and contains_any(text, [g.lower() for g in golds])  # noqa: E731
        memo[weight] = {
            "p": best["usable"] if best else 0.0,
            "short": (metrics.exact_match(golds, short), metrics.f1(golds, short)),
            "none": (metrics.exact_match(golds, ""), metrics.f1(golds, "")),
            "found": {"short": found(best["short_text"]) if best else False, "sentences": found(rec["sentences"])},
        }
    return memo[weight]


def score(records: list[dict], th: decline.Thresholds) -> dict:
    """`assistant eval`'s figures for these records under thresholds `th`."""
    return figures([(r, th) for r in records])


def figures(judged: list[tuple[dict, decline.Thresholds]]) -> dict:
    """`assistant eval`'s figures for records, each under its own thresholds (see `crossvalidate`)."""
    em, f1, has_f1, no_acc = [], [], [], []
    answered = declined_answerable = abstained = abstained_impossible = 0
    answerable = sum(not r["impossible"] for r, _ in judged)
    for r, th in judged:
        action, scored = outcome(r, th), _scored(r, th.retrieval_weight)
        e, f = scored["short"] if action == "short" else scored["none"]
        em.append(e)
        f1.append(f)
        (no_acc if r["impossible"] else has_f1).append(f)
        abstained += action == "decline"
        if r["impossible"]:
            abstained_impossible += action == "decline"
        else:
            declined_answerable += action == "decline"
            answered += action != "decline" and scored["found"][action]
    mean = lambda xs: round(sum(xs) / len(xs), 4) if xs else 0.0  # noqa: E731
    return {
        "questions": len(judged),
        "answer_recall": round(answered / answerable, 4) if answerable else 0.0,
        "answerable_abstain_rate": round(declined_answerable / answerable, 4) if answerable else 0.0,
        "abstain_precision": round(abstained_impossible / abstained, 4) if abstained else 0.0,
        "exact_match": mean(em),
        "f1": mean(f1),
        "has_answer_f1": mean(has_f1),
        "no_answer_accuracy": mean(no_acc),
    }


def search(records: list[dict], max_answerable: float) -> decline.Thresholds:
    """The thresholds with the best mean of overall F1 and has-answer F1 whose declines stay within the limits.

    Overall F1 on SQuAD v2 (half its questions unanswerable) rewards withholding short answers;
    users mostly ask what their documents answer, where has-answer F1 is what counts: the mean
    weighs both kinds of collection alike.
    """
    best, best_f1 = None, -1.0
    for values in itertools.product(*GRID.values()):
        th = decline.Thresholds(**dict(zip(GRID, values, strict=True)))
        s = score(records, th)
        ok = s["answerable_abstain_rate"] <= max_answerable and (s["abstain_precision"] >= 0.8 or s["f1"] == 0)
        if ok and (s["f1"] + s["has_answer_f1"]) / 2 > best_f1:
            best, best_f1 = th, (s["f1"] + s["has_answer_f1"]) / 2
    return best


def crossvalidate(records: list[dict], max_answerable: float) -> tuple[dict, dict[str, dict]]:
    """Leave one article out: thresholds searched on the other articles judge this one's questions.

    The pooled figures estimate what `search` over all articles gives on an article it never saw
    (the thresholds shipped are searched on all of them); also the thresholds each fold chose.
    """
    judged, chosen = [], {}
    for article in sorted({r["article"] for r in records}):
        th = search([r for r in records if r["article"] != article], max_answerable)
        chosen[article] = asdict(th)
        judged += [(r, th) for r in records if r["article"] == article]
    return figures(judged), chosen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--heldout", type=int, default=100_000, help="held-out questions to sample (default: all)")
    p.add_argument("--calibration", type=int, default=100_000, help="calibration questions to sample (default: all)")
    p.add_argument("--records", type=Path, help="cache of the collected records (read if it exists)")
    p.add_argument("--model", help="reader model folder (default: the shipped one)")
    p.add_argument(
        "--claims", type=int, default=150, help="SciFact claims asked of the articles (all should be declined)"
    )
    p.add_argument("--max-answerable", type=float, default=0.05)
    p.add_argument("--write", action="store_true", help="save the chosen thresholds in the model's config.json")
    args = p.parse_args()
    if args.records and args.records.is_file():
        records = json.loads(args.records.read_text())
        if any("article" not in r for r in records):
            sys.exit(f"{args.records} was written by an older version of this bench (no articles): delete it")
    else:
        records = collect(args)
        if args.records:
            args.records.write_text(json.dumps(records))
    articles = [r for r in records if r["part"] in ("calibration", "heldout")]
    claims = [r for r in records if r["part"] == "claims"]
    from assistant.reading.reader import DEFAULT_MODEL_DIR

    model_dir = Path(args.model) if args.model else DEFAULT_MODEL_DIR
    current = decline.Thresholds.load(model_dir) if (model_dir / "config.json").is_file() else decline.Thresholds()
    chosen = search(articles, args.max_answerable)
    pooled, folds = crossvalidate(articles, args.max_answerable)
    declined = lambda th: round(sum(outcome(r, th) == "decline" for r in claims) / max(1, len(claims)), 4)  # noqa: E731
    report = {
        "claims_declined": declined(chosen),
        "claims_declined_current": declined(current),
        "chosen": asdict(chosen),
        "current": asdict(current),
        "leave_one_article_out": pooled,
        "all_articles": score(articles, chosen),
        "all_articles_current": score(articles, current),
        "heldout_current": score([r for r in articles if r["part"] == "heldout"], current),
        "fold_thresholds": folds,
    }
    print(json.dumps(report, indent=1))
    if args.write:
        chosen.save(model_dir)


if __name__ == "__main__":
    main()
