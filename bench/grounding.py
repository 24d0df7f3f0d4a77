"""How well `Grounder` tells supported sentences from invented ones, on SQuAD v2 dev (prints one JSON line).

For answerable questions of a seeded half of the articles ("tune") and of the other half
("held_out"), the passages are the gold paragraph plus three other paragraphs of the same article,
shuffled (what retrieval typically returns: one right passage among on-topic ones). Each claim is
grounded alone, as the whole "answer":

- gold: the gold paragraph's sentence containing the gold answer; it must be judged supported
  (`false_alarm` is the share that is not) and attributed to the gold paragraph (`attribution`);
  with a marker pointing at another passage it must be re-attributed (`reattributed`).
- paraphrase: the question turned into a loose statement ("<question>: <answer>."), words the
  passage does not use; not a target, it shows how strict the check is with free wording.
- swapped: the gold sentence with one number, date or name replaced by another of the same kind
  from the same article that occurs in none of the passages (found by a pattern independent of the
  checker's own); it must be judged unsupported (`detection`).
- unrelated: a sentence of another article (`unrelated_rejection`).
- same_article: a sentence of a paragraph of the same article that is not among the passages
  (`same_article_rejection`); on topic, often sharing names; some are truly supported (articles
  repeat themselves), so this rate cannot reach 1. `same_article_hard_rejection` counts only those
  whose names and numbers all occur somewhere in the passages: the support score alone decides.

`latency_ms`: `ground()` on four-sentence answers (wall time, and the process's CPU time, which a
busy machine inflates less), cold (nothing embedded yet) and after
`prepare(passages)` (as when the passages are read while the LLM writes): `mixed` (gold with a wrong
marker, paraphrase, swapped, unrelated) and `paraphrased` (four questions on one paragraph, each
as a statement: every sentence in the wording band where its meaning must be weighed, the costly case).

`--calibrate` adds, for a grid of meaning weights, the threshold chosen on the tune articles (among
those, between the lexical floor and sure values, whose gold false alarms stay <= 0.05 and
paraphrase false alarms <= --max-paraphrase: the lowest that rejects the most hard same-article
sentences) and what it gives on the held-out articles; the weight to use is the one rejecting most
hard same-article sentences on the tune articles, ties going to fewer paraphrase false alarms.

    python bench/grounding.py --json [--questions 200] [--seed 13] [--calibrate]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
from _common import DATA

from assistant.embedding import Embedder
from assistant.grounding.grounder import Grounder
from assistant.ingest.chunking import sentences
from assistant.schema import Chunk, Passage
from assistant.settings import Settings

SQUAD = DATA / "squad-v2-dev"
KINDS = ("gold", "paraphrase", "swapped", "unrelated", "same_article")
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
# The swap generator's own patterns (not the checker's): numbers, months, capitalised word runs.
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])")
_MONTH = re.compile(rf"\b(?:{_MONTHS})\b")
_NAME = re.compile(rf"(?<=[a-z,;] )(?!(?:{_MONTHS})\b)[A-Z][a-z](?:[\w'-]*\w)?(?: [A-Z][a-z](?:[\w'-]*\w)?)*")


def load_articles() -> dict[str, list[str]]:
    articles = {}
    for path in sorted((SQUAD / "docs").glob("*.txt")):
        blocks = [b.strip() for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]
        articles[path.name] = blocks[1:]  # the first block is the title
    return articles


def sentence_texts(text: str) -> list[str]:
    return [text[s.start : s.end] for s in sentences(text)]


def kind_of(match: str) -> tuple[str, int]:
    if _NUMBER.fullmatch(match):
        return ("year", 4) if re.fullmatch(r"1\d{3}|20\d{2}", match) else ("number", 0)
    if _MONTH.fullmatch(match):
        return ("month", 0)
    return ("name", match.count(" ") + 1)


def mentions(text: str) -> list[tuple[int, int, str]]:
    out = []
    for pattern in (_NUMBER, _MONTH, _NAME):
        out.extend((m.start(), m.end(), m.group()) for m in pattern.finditer(text))
    return out


def swap(sentence: str, article: str, passages_text: str, rng: random.Random) -> str | None:
    """The sentence with one mention replaced by a same-kind mention of the article absent from the passages."""
    pool: dict[tuple[str, int], list[str]] = {}
    for _, _, m in mentions(article):
        pool.setdefault(kind_of(m), []).append(m)
    options = mentions(sentence)
    rng.shuffle(options)
    for start, end, m in options:
        candidates = sorted(
            {
                r
                for r in pool.get(kind_of(m), [])
                if r.lower() != m.lower() and not re.search(rf"(?<!\w){re.escape(r)}(?!\w)", passages_text, re.I)
            }
        )
        if candidates:
            return sentence[:start] + rng.choice(candidates) + sentence[end:]
    return None


def build_cases(questions, articles, names, n, rng) -> list[dict]:
    """Passages and the five claims for up to n answerable questions of the given articles."""
    pool = [q for q in questions if q["document"] in names and not q["is_impossible"] and q["answers"]]
    rng.shuffle(pool)
    others = [a for a in articles if a not in names] or list(articles)
    cases = []
    for q in pool:
        paragraphs = articles[q["document"]]
        gold_para = paragraphs[q["paragraph"]]
        gold = next((s for s in sentence_texts(gold_para) if q["answers"][0] in s), None)
        rest = [i for i in range(len(paragraphs)) if i != q["paragraph"]]
        if gold is None or len(rest) < 4:
            continue
        chosen = rng.sample(rest, 3)
        order = [q["paragraph"], *chosen]
        rng.shuffle(order)
        texts = [paragraphs[i] for i in order]
        joined = "\n".join(texts)
        outside = [s for i in rest if i not in chosen for s in sentence_texts(paragraphs[i])]
        outside = [s for s in outside if len(s.split()) >= 8 and s not in joined]
        foreign = [s for s in sentence_texts("\n\n".join(articles[rng.choice(others)])) if len(s.split()) >= 8]
        cases.append(
            {
                "passages": texts,
                "gold_position": order.index(q["paragraph"]) + 1,
                "claims": {
                    "gold": gold,
                    "paraphrase": f"{q['question'].strip().rstrip('?').strip()}: {q['answers'][0]}.",
                    "swapped": swap(gold, "\n".join(paragraphs), joined, rng),
                    "unrelated": rng.choice(foreign),
                    "same_article": rng.choice(outside) if outside else None,
                },
            }
        )
        if len(cases) >= n:
            break
    return cases


def as_passages(texts: list[str]) -> list[Passage]:
    return [Passage(Chunk(f"p{i}", "squad.txt", t, 0, len(t)), 1.0) for i, t in enumerate(texts)]


def evaluate(grounder: Grounder, cases: list[dict]) -> dict:
    """The rates named in the module docstring, through `ground()` as the pipeline calls it."""
    flagged = {k: [] for k in KINDS}
    attributed, reattributed, by_reason, hard = [], [], {"names": 0, "support": 0}, []
    for case in cases:
        passages = as_passages(case["passages"])
        gold_n = case["gold_position"]
        for kind, claim in case["claims"].items():
            if claim is None:
                continue
            g = grounder.ground(claim, passages)
            flagged[kind].append(bool(g.unsupported))
            anywhere = bool(g.unsupported) and g.unsupported[0].reason.startswith("names/numbers not in any")
            if kind == "swapped" and g.unsupported:
                by_reason["names" if anywhere else "support"] += 1
            if kind == "same_article" and not anywhere:
                hard.append(bool(g.unsupported))
            if kind == "gold" and not g.unsupported:
                attributed.append(g.cited == (gold_n,))
                wrong = gold_n % len(passages) + 1
                re_g = grounder.ground(f"{claim.rstrip('.')} [{wrong}].", passages)
                reattributed.append(re_g.cited == (gold_n,))
    rate = lambda xs: round(float(np.mean(xs)), 3) if xs else None  # noqa: E731
    return {
        "questions": len(cases),
        "false_alarm": rate(flagged["gold"]),
        "attribution": rate(attributed),
        "reattributed": rate(reattributed),
        "paraphrase_false_alarm": rate(flagged["paraphrase"]),
        "detection": rate(flagged["swapped"]),
        "swaps": len(flagged["swapped"]),
        "swaps_caught_by_names_check": by_reason["names"],
        "unrelated_rejection": rate(flagged["unrelated"]),
        "same_article_rejection": rate(flagged["same_article"]),
        "same_article_hard": len(hard),
        "same_article_hard_rejection": rate(hard),
    }


def paraphrased_answers(questions, articles, names, n, rng) -> list[tuple[list[str], str]]:
    """Four-sentence answers of paraphrases: four questions on one paragraph, each as a statement."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for q in questions:
        if q["document"] in names and not q["is_impossible"] and q["answers"]:
            groups.setdefault((q["document"], q["paragraph"]), []).append(q)
    keys = sorted(k for k, qs in groups.items() if len(qs) >= 4)
    rng.shuffle(keys)
    out = []
    for doc, para in keys[:n]:
        paragraphs = articles[doc]
        others = rng.sample([i for i in range(len(paragraphs)) if i != para], 3)
        texts = [paragraphs[i] for i in [para, *others]]
        rng.shuffle(texts)
        claims = [f"{q['question'].strip().rstrip('?').strip()}: {q['answers'][0]}." for q in groups[(doc, para)][:4]]
        out.append((texts, " ".join(claims)))
    return out


def timed(embedder: Embedder, answers: list[tuple[list[str], str]], settings: dict) -> dict:
    """`ground()` per answer, cold (a fresh grounder) and after `prepare(passages)`, in ms."""
    wall: dict[str, list[float]] = {"cold": [], "prepared": []}
    cpu: dict[str, list[float]] = {"cold": [], "prepared": []}
    for texts, answer in answers:
        passages = as_passages(texts)
        for mode in ("cold", "prepared"):
            grounder = Grounder(embedder, **settings)
            if mode == "prepared":
                grounder.prepare(passages)
            t, c = time.perf_counter(), time.process_time()
            grounder.ground(answer, passages)
            wall[mode].append((time.perf_counter() - t) * 1000)
            cpu[mode].append((time.process_time() - c) * 1000)
    pct = lambda xs, q: round(float(np.percentile(xs, q)), 1) if xs else None  # noqa: E731
    out: dict = {"answers": len(answers)}
    for mode in ("cold", "prepared"):
        out |= {
            f"{mode}_p50": pct(wall[mode], 50),
            f"{mode}_p95": pct(wall[mode], 95),
            f"{mode}_cpu_p50": pct(cpu[mode], 50),
            f"{mode}_cpu_p95": pct(cpu[mode], 95),
        }
    return out


def mixed_answers(cases: list[dict]) -> list[tuple[list[str], str]]:
    """Four-sentence answers: the gold sentence citing a wrong passage, a paraphrase, a swap, an unrelated one."""
    out = []
    for case in cases:
        c = case["claims"]
        if c["swapped"]:
            wrong = case["gold_position"] % len(case["passages"]) + 1
            answer = f"{c['gold'].rstrip('.')} [{wrong}]. {c['paraphrase']} {c['swapped']} {c['unrelated']}"
            out.append((case["passages"], answer))
    return out


def calibrate(grounder: Grounder, tune: list[dict], held: list[dict], max_paraphrase: float) -> list[dict]:
    """Per meaning weight: the threshold chosen on tune, and both splits' rates with it."""

    def features(cases):
        out = {k: [] for k in KINDS}
        for case in cases:
            passages = as_passages(case["passages"])
            kinds = [k for k in KINDS if case["claims"][k]]
            claims = [case["claims"][k] for k in kinds]
            for k, c, ev in zip(kinds, claims, grounder.measure(claims, passages), strict=True):
                cos = ev.meaning
                if cos is None:  # the words decided; weigh the meaning anyway to try other settings
                    cos = grounder.meaning([c], list(ev.windows), [ev.lexical])[0]
                out[k].append((ev.lexical, cos, bool(ev.missing)))
        return out

    def unsupported(lex, cos, missing, w, t):
        best = float(lex.max(initial=0.0))
        if missing:
            return True
        if best >= grounder.lexical_sure or best < grounder.lexical_floor:
            return best < t
        return float(np.max(w * cos + (1 - w) * lex)) < t

    def rates(data, w, t):
        flag = {k: [unsupported(*row, w, t) for row in rows] for k, rows in data.items()}
        flag["same_article_hard"] = [unsupported(*row, w, t) for row in data["same_article"] if not row[2]]
        return {k: round(float(np.mean(v)), 3) for k, v in flag.items() if v}

    tune_data, held_data = features(tune), features(held)
    rows = []
    for w in (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0):
        allowed = []
        for t in (round(float(x), 2) for x in np.arange(0.20, 0.61, 0.01)):
            r = rates(tune_data, w, t)
            if r["gold"] <= 0.05 and r["paraphrase"] <= max_paraphrase:
                allowed.append(t)
        # The most hard same-article sentences rejected, at the lowest threshold that does it.
        best = max(allowed, key=lambda t: (rates(tune_data, w, t)["same_article_hard"], -t), default=0.2)
        rows.append(
            {
                "w_meaning": w,
                "threshold": best,
                "tune": rates(tune_data, w, best),
                "held_out": rates(held_data, w, best),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line (the default output)")
    parser.add_argument("--questions", type=int, default=200, help="questions per split")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--max-paraphrase", type=float, default=0.10)
    parser.add_argument("--latency-answers", type=int, default=40)
    parser.add_argument("--max-embedded", type=int, default=None, help="override Grounder.max_embedded")
    args = parser.parse_args()

    articles = load_articles()
    questions = [json.loads(line) for line in (SQUAD / "questions.jsonl").open(encoding="utf-8")]
    names = sorted(articles)
    random.Random(args.seed).shuffle(names)
    tune_names, held_names = set(names[: len(names) // 2]), set(names[len(names) // 2 :])
    rng = random.Random(args.seed)
    tune = build_cases(questions, articles, tune_names, args.questions, rng)
    held = build_cases(questions, articles, held_names, args.questions, rng)

    embedder = Embedder(cache_dir=Settings.from_env().cache_dir)  # the float32 build, as answers use it
    grounder = Grounder(embedder) if args.max_embedded is None else Grounder(embedder, max_embedded=args.max_embedded)
    embedder.warm_up()
    settings = {
        k: getattr(grounder, k)
        for k in (
            "threshold",
            "w_meaning",
            "keep_margin",
            "lexical_floor",
            "lexical_sure",
            "lexical_threshold",
            "max_embedded",
        )
    }
    out = {
        "data": "squad-v2-dev answerable questions; passages = gold paragraph + 3 other paragraphs of its article",
        "seed": args.seed,
        "settings": settings,
        "tune_articles": sorted(Path(n).stem for n in tune_names),
        "tune": evaluate(grounder, tune),
        "held_out": evaluate(grounder, held),
        "latency_ms": {
            "mixed": timed(embedder, mixed_answers(held[: args.latency_answers]), settings),
            "paraphrased": timed(
                embedder, paraphrased_answers(questions, articles, held_names, args.latency_answers, rng), settings
            ),
        },
    }
    if args.calibrate:
        out["calibration"] = calibrate(grounder, tune, held, args.max_paraphrase)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
