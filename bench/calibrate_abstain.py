"""Reproduces the extractive generator's abstention model and prints its figures as JSON.

1. Index a QA folder (default SQuAD v2 dev, 18 articles) into a temporary folder.
2. For a seeded sample of questions (`--fit`, default 1500), retrieve the top-k passages and compute
   the evidence features `ExtractiveGenerator.analyse` gives the model (label: `is_impossible`).
3. Fit a logistic regression (standardisation folded back into plain coefficients) and pick the
   lowest threshold whose share of declined answerable questions stays under `--max-answerable`
   (default 0.04): SQuAD v2's unanswerable questions are adversarial (same topic, one detail
   changed), so only a small slice of them can be told apart without refusing real questions, and
   each declined answerable question costs answer recall.
4. Report precision/recall of abstaining and answer recall on the fitted sample and on the
   remaining (held-out) questions, and the decline rate on off-topic questions.

Paste the printed `coef` and `intercept` into assistant/generation/decline.py (the threshold is `decline_at`,
saved with the reader model: see `bench/calibrate_reader.py --write`).

    .venv/bin/python bench/calibrate_abstain.py [--fit 1500] [--held-out 1500] [FOLDER]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import DATA

from assistant.evaluation.squad import _jsonl, contains_any
from assistant.generation import decline
from assistant.settings import Settings

DEFAULT = DATA / "squad-v2-dev"

# Questions about things an encyclopedia sample or a news article does not cover: a decline check.
OFF_TOPIC = [
    "How do I bake sourdough bread?",
    "What is the best way to learn to play the guitar?",
    "How many calories are in a banana?",
    "How do I reset my iPhone password?",
    "What is the recipe for chocolate chip cookies?",
    "How do I change a flat tire?",
    "What programming language should I learn first?",
    "What are the symptoms of the flu?",
    "How do I train my dog to sit?",
    "What is the plot of the movie Titanic?",
    "How do I make a budget spreadsheet in Excel?",
    "What is the best treatment for a sunburn?",
    "What should I pack for a beach vacation?",
    "How do I grow tomatoes on a balcony?",
    "How do I invest in index funds?",
    "What are good exercises for lower back pain?",
    "How do I install Python on Windows?",
    "What is the difference between a latte and a cappuccino?",
    "Which smartphone has the best camera?",
    "How long should I boil an egg?",
    "How do I knit a scarf?",
    "What is the weather like in Lisbon in April?",
    "How can I improve my credit score?",
    "What are the rules of chess castling?",
]


def collect(assistant, questions: list[dict], k: int) -> list[dict]:
    from tqdm import tqdm

    rows = []
    gen = assistant.extractive
    for q in tqdm(questions, desc="Features", file=sys.stderr, leave=False):
        passages = assistant.retrieve(q["question"], k)
        ranked, evidence = gen.analyse(q["question"], passages)
        answer = " ".join(c.text for c in gen.choose(ranked)) if ranked else ""
        rows.append(
            {
                "impossible": bool(q.get("is_impossible")),
                "features": [evidence.get(f, 0.0) for f in decline.FEATURES] if evidence else None,
                "evidence": evidence,
                "coverage": evidence.get("passage_coverage", 0.0) if evidence else 0.0,
                "correct": bool(q.get("answers")) and contains_any(answer, [g.lower() for g in q["answers"]]),
            }
        )
    return rows


def fit(rows: list[dict]) -> tuple[dict[str, float], float]:
    from sklearn.linear_model import LogisticRegression

    usable = [r for r in rows if r["features"]]
    x = np.array([r["features"] for r in usable])
    y = np.array([r["impossible"] for r in usable])
    mean, std = x.mean(0), x.std(0) + 1e-9
    model = LogisticRegression(C=1.0, max_iter=2000).fit((x - mean) / std, y)
    coef = model.coef_[0] / std
    intercept = float(model.intercept_[0] - (coef * mean).sum())
    return dict(zip(decline.FEATURES, (round(float(c), 4) for c in coef), strict=True)), round(intercept, 4)


def probabilities(rows: list[dict], coef: dict[str, float], intercept: float) -> np.ndarray:
    out = []
    for r in rows:
        if not r["features"]:
            out.append(1.0)
            continue
        evidence = r["evidence"]
        decline.COEF.update(coef)
        decline.INTERCEPT = intercept
        out.append(decline.no_answer_probability(evidence))
    return np.array(out)


def figures(rows: list[dict], p: np.ndarray, threshold: float) -> dict:
    declined = p >= threshold
    impossible = np.array([r["impossible"] for r in rows])
    correct = np.array([r["correct"] for r in rows])
    answerable = ~impossible
    return {
        "questions": len(rows),
        "answer_recall": round(float((correct & ~declined & answerable).sum() / max(1, answerable.sum())), 4),
        "abstain_precision": round(float((declined & impossible).sum() / max(1, declined.sum())), 4),
        "abstain_recall": round(float((declined & impossible).sum() / max(1, impossible.sum())), 4),
        "answerable_abstain_rate": round(float((declined & answerable).sum() / max(1, answerable.sum())), 4),
    }


def pick_threshold(rows: list[dict], p: np.ndarray, max_answerable: float) -> float:
    for t in np.arange(0.40, 0.96, 0.01):
        if figures(rows, p, float(t))["answerable_abstain_rate"] <= max_answerable:
            return round(float(t), 2)
    return 0.95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--fit", type=int, default=1500, help="questions to fit on (seeded sample)")
    parser.add_argument("--held-out", type=int, default=1500, help="questions to confirm on (0 = all the rest)")
    parser.add_argument("--max-answerable", type=float, default=0.04)
    parser.add_argument("-k", type=int, default=4)
    args = parser.parse_args()

    from assistant.pipeline import Assistant

    questions = [q for q in _jsonl(args.folder / "questions.jsonl") if q.get("question")]
    random.Random(0).shuffle(questions)
    train, rest = questions[: args.fit], questions[args.fit :]
    test = rest[: args.held_out] if args.held_out else rest
    with tempfile.TemporaryDirectory() as tmp:
        assistant = Assistant(Settings.from_env(index_dir=Path(tmp), chroma_url=None, collection="cal", progress=False))
        assistant.index([args.folder / "docs"])
        train_rows = collect(assistant, train, args.k)
        test_rows = collect(assistant, test, args.k)
        off_rows = collect(assistant, [{"question": q, "is_impossible": True} for q in OFF_TOPIC], args.k)
    coef, intercept = fit(train_rows)
    threshold = pick_threshold(train_rows, probabilities(train_rows, coef, intercept), args.max_answerable)
    off = probabilities(off_rows, coef, intercept) >= threshold
    print(
        json.dumps(
            {
                "coef": coef,
                "intercept": intercept,
                "threshold": threshold,
                "fit": figures(train_rows, probabilities(train_rows, coef, intercept), threshold),
                "held_out": figures(test_rows, probabilities(test_rows, coef, intercept), threshold),
                "off_topic_declined": round(float(off.mean()), 4),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
