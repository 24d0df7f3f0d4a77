"""Training and evaluation examples for the reader, from /work/shared/data-style folders.

Positives come from qa-train (SQuAD 1.1 non-v2 articles, NQ via QED, COVID-QA). The no-answer head
learns from three kinds of negatives: windows of a context that do not hold the answer, questions
paired with another passage of the same article, and the unanswerable questions of the SQuAD v2 dev
articles that are not held out. Articles are split by a seeded shuffle so the split can be rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class QAExample:
    """One question over one context.

    Args:
        answers: gold answer strings (empty when unanswerable).
        start: character offset of ``answers[0]`` in ``context`` (-1 when unanswerable or not located).
        kind: where it comes from: ``positive``, ``squad2-positive``, ``squad2-impossible``, ``swapped``.
    """

    qid: str
    question: str
    context: str
    answers: list[str]
    start: int
    kind: str
    group: str = ""


@dataclass
class Squad2Split:
    """The SQuAD v2 dev articles split into training, calibration and held-out test parts."""

    train: list[str]
    calibration: list[str]
    heldout: list[str]
    examples: dict[str, list[QAExample]] = field(default_factory=dict)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_qa_train(path: Path) -> list[QAExample]:
    """qa-train lines; the first answer (QED list answers: their first part) is the training target."""
    out = []
    for row in read_jsonl(path):
        first = row["answers"][0]
        out.append(
            QAExample(
                qid=row["id"],
                question=row["question"],
                context=row["context"],
                answers=[a["text"] for a in row["answers"]],
                start=int(first["start"]),
                kind="positive",
                group=f"{row.get('source', '')}:{row.get('title', '')}",
            )
        )
    return out


def read_article(path: Path) -> list[str]:
    """Paragraphs of a docs/<Article>.txt file (first line is the title)."""
    blocks = [b.strip() for b in path.read_text(encoding="utf-8").split("\n\n")]
    blocks = [b for b in blocks if b]
    return blocks[1:]


def locate(paragraph: str, answers: list[str]) -> int:
    """Offset of the first gold answer found verbatim in the paragraph, or -1."""
    for text in answers:
        pos = paragraph.find(text)
        if text and pos >= 0:
            return pos
    return -1


def load_squad2(folder: Path, seed: int, n_heldout: int = 6, n_calibration: int = 2) -> Squad2Split:
    """Split the articles (seeded shuffle of the sorted names) and build each part's examples."""
    names = sorted(p.stem for p in (folder / "docs").glob("*.txt"))
    random.Random(seed).shuffle(names)
    split = Squad2Split(
        heldout=sorted(names[:n_heldout]),
        calibration=sorted(names[n_heldout : n_heldout + n_calibration]),
        train=sorted(names[n_heldout + n_calibration :]),
    )
    paragraphs = {name: read_article(folder / "docs" / f"{name}.txt") for name in names}
    part_of = {n: part for part in ("train", "calibration", "heldout") for n in getattr(split, part)}
    split.examples = {"train": [], "calibration": [], "heldout": []}
    for row in read_jsonl(folder / "questions.jsonl"):
        name = Path(row["document"]).stem
        context = paragraphs[name][int(row["paragraph"])]
        answers = [] if row["is_impossible"] else list(row["answers"])
        start = locate(context, answers) if answers else -1
        kind = "squad2-impossible" if not answers else "squad2-positive"
        ex = QAExample(row["id"], row["question"], context, answers, start, kind, group=f"squad2:{name}")
        split.examples[part_of[name]].append(ex)
    return split


def swapped_negatives(examples: list[QAExample], count: int, seed: int) -> list[QAExample]:
    """Questions paired with another context of the same article/source that does not contain the answer."""
    by_group: dict = {}
    for ex in examples:
        by_group.setdefault(ex.group, {})[ex.context] = None  # ordered, unique
    by_group = {g: list(cs) for g, cs in by_group.items()}
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    out: list[QAExample] = []
    for i in order:
        if len(out) >= count:
            break
        ex = examples[i]
        others = [c for c in by_group.get(ex.group, []) if c != ex.context]
        if not others:
            continue
        other = rng.choice(others)
        if any(a and a.lower() in other.lower() for a in ex.answers):
            continue
        out.append(QAExample(f"{ex.qid}-swap", ex.question, other, [], -1, "swapped", ex.group))
    return out
