"""Training and evaluation examples for the reader, from /work/shared/data-style folders.

Positives come from qa-train (SQuAD 1.1 non-v2 articles, NQ via QED, COVID-QA). The no-answer head
learns from windows of a context that do not hold the answer, questions paired with another passage
of the same article (a random one, or the one most like the question), questions with a name or number
swapped for one the context lacks, and the unanswerable questions of the SQuAD v2 dev articles that
are not held out. Articles are split by a seeded shuffle so the split can be rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class QAExample:
    """One question over one context.

    Args:
        answers: gold answer strings (empty when unanswerable).
        start: character offset of ``answers[0]`` in ``context`` (-1 when unanswerable or not located).
        kind: where it comes from: ``positive``, ``squad2-positive``, ``squad2-impossible``, ``swapped``,
            ``hard`` (the most question-like other passage), ``perturbed`` (a name or number swapped).
    """

    qid: str
    question: str
    context: str
    answers: list[str]
    start: int
    kind: str
    group: str = ""
    focus: int = -1  # perturbed negatives: where the unperturbed answer was (the window to keep)


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
    by_group = _contexts_by_group(examples)
    rng = random.Random(seed)

    def swap(ex: QAExample) -> QAExample | None:
        others = [c for c in by_group.get(ex.group, []) if c != ex.context]
        if not others:
            return None
        other = rng.choice(others)
        if any(a and a.lower() in other.lower() for a in ex.answers):
            return None
        return QAExample(f"{ex.qid}-swap", ex.question, other, [], -1, "swapped", ex.group)

    return _draw(examples, lambda ex: True, count, rng, swap)


def _contexts_by_group(examples: list[QAExample]) -> dict[str, list[str]]:
    """Each group's (article's or source's) distinct contexts, in first-seen order."""
    by_group: dict[str, dict[str, None]] = {}
    for ex in examples:
        by_group.setdefault(ex.group, {})[ex.context] = None  # ordered, unique
    return {g: list(cs) for g, cs in by_group.items()}


def _draw(examples: list[QAExample], eligible, count: int, rng: random.Random, make) -> list[QAExample]:
    """Up to `count` examples made by `make` (None: skip) from the `eligible` ones, in a seeded order."""
    order = [i for i in range(len(examples)) if eligible(examples[i])]
    rng.shuffle(order)
    out: list[QAExample] = []
    for i in order:
        if len(out) >= count:
            break
        made = make(examples[i])
        if made is not None:
            out.append(made)
    return out


WORD = re.compile(r"[A-Za-z][A-Za-z'-]+|\d[\d,.]*\d|\d")
_STOP_WORDS = (
    "the a an of in on at to for from by with and or but is are was were be been what which who whom whose when "
    "where why how did does do that this these those it its as into than then there their they he she his her "
    "not no can could would should will may might has have had about after before during over under"
)
STOP = frozenset(_STOP_WORDS.split())


def content_words(text: str) -> set[str]:
    """Lower-cased words of a text without the commonest function words."""
    return {w.lower() for w in WORD.findall(text) if w.lower() not in STOP}


def hard_negatives(examples: list[QAExample], count: int, seed: int) -> list[QAExample]:
    """Questions paired with the other passage of their article that shares most words with them.

    Random other passages (``swapped_negatives``) are easy to reject; the pipeline instead hands the
    reader passages that retrieval found similar, so these negatives look like what it meets.
    """
    by_group = _contexts_by_group(examples)
    words_of = {c: content_words(c) for contexts in by_group.values() for c in contexts}
    rng = random.Random(seed + 1)

    def pair(ex: QAExample) -> QAExample | None:
        words = content_words(ex.question)
        others = [
            c
            for c in by_group[ex.group]
            if c != ex.context and not any(a and a.lower() in c.lower() for a in ex.answers)
        ]
        if not others or not words:
            return None
        best = max(others, key=lambda c: len(words & words_of[c]))
        if not words & words_of[best]:
            return None
        return QAExample(f"{ex.qid}-hard", ex.question, best, [], -1, "hard", ex.group)

    return _draw(examples, lambda ex: bool(ex.answers) and len(by_group[ex.group]) > 1, count, rng, pair)


def _names(examples: list[QAExample]) -> list[str]:
    """Words seen capitalised at least five times and never in lower case: the replacement names."""
    capital, lower = Counter(), set()
    for ex in examples:
        for w in WORD.findall(ex.context):
            if w[0].isupper() and len(w) >= 4:
                capital[w] += 1
            elif w[0].islower():
                lower.add(w)
    return sorted(w for w, n in capital.items() if n >= 5 and w.lower() not in lower)


def perturb(question: str, context: str, names: list[str], rng: random.Random) -> str | None:
    """The question with one of its anchors (a name or number it shares with the context) swapped for one
    the context does not hold, so it still looks answerable but is not; None if it has no anchor.

    SQuAD 2.0's unanswerable questions are mostly such near-misses (an entity swapped, an impossible
    condition); the reader must learn that the asked-about thing is missing, not just that the topic is.
    """
    lower = context.lower()
    words = set(WORD.findall(context))
    anchors = []
    for m in WORD.finditer(question):
        w = m.group()
        if w.lower() in STOP or w.lower() not in lower:
            continue
        number = w.isdigit()
        name = w[0].isupper() and m.start() > 0 and w in words
        lowered_name = w[0].islower() and len(w) >= 4 and w.capitalize() in words and w not in words  # NQ style
        if number or name or lowered_name:
            anchors.append(m)
    if not anchors:
        return None
    m = rng.choice(anchors)
    old = m.group()
    for _ in range(20):
        if old.isdigit():
            value = int(old)
            step = rng.randint(2, 40) if 1000 <= value <= 2100 else rng.randint(1, max(2, value))
            new = str(value + rng.choice((-1, 1)) * step)
        else:
            new = rng.choice(names)
            new = new.lower() if old[0].islower() else new
        if new.lower() not in lower and new.lower() not in question.lower() and not new.startswith("-"):
            return question[: m.start()] + new + question[m.end() :]
    return None


def perturbed_negatives(examples: list[QAExample], count: int, seed: int) -> list[QAExample]:
    """Unanswerable near-misses made from answerable examples by :func:`perturb`."""
    names = _names(examples)
    rng = random.Random(seed + 2)

    def near_miss(ex: QAExample) -> QAExample | None:
        question = perturb(ex.question, ex.context, names, rng)
        if question is None:
            return None
        return QAExample(f"{ex.qid}-perturbed", question, ex.context, [], -1, "perturbed", ex.group, focus=ex.start)

    return _draw(examples, lambda ex: ex.start >= 0, count, rng, near_miss)
