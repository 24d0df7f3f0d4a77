"""Why/how questions: does the answer lead with the reason (or the way)?

Takes the answerable why/how questions ("how many/much/long…" excluded) of QA folders (default
SQuAD v2 dev and real-docs), a deterministic sample of at most --limit per folder, indexes the
documents they come from into a temporary index, and asks each through `Assistant.answer`. Prints
per folder: first-sentence answer recall (the answer's first sentence — up to its first `[n]` —
holds a gold answer), answer recall (anywhere in the text) and the share declined, as JSON.

    python bench/why_how.py [FOLDER ...] [--limit N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
from pathlib import Path

from _common import DATA

from assistant import Assistant

WHY_HOW = re.compile(
    r"^\s*(?:why\b|how\b(?!\s+(?:many|much|long|old|far|large|big|often|tall|high|deep|fast|wide|heavy|soon)))", re.I
)
FIRST = re.compile(r"^(.*?)\[\d+(?:[,\-–]\s*\d+)*\]", re.S)


def sample(folder: Path, limit: int) -> list[dict]:
    rows = [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if WHY_HOW.search(r["question"]) and not r.get("is_impossible") and r.get("answers")]
    rows.sort(key=lambda r: hashlib.sha256(r["question"].encode()).hexdigest())
    return rows[:limit]


def first_sentence(text: str) -> str:
    m = FIRST.match(text)
    return m.group(1) if m else text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--limit", type=int, default=60)
    args = parser.parse_args()
    folders = args.folders or [DATA / "squad-v2-dev", DATA / "real-docs"]
    out = {}
    for folder in folders:
        cases = sample(folder, args.limit)
        docs = sorted({folder / "docs" / r["document"] for r in cases if r.get("document")})
        with tempfile.TemporaryDirectory() as index:
            assistant = Assistant(index_dir=index, progress=False)
            assistant.index(docs or [folder / "docs"])
            first = anywhere = declined = 0
            for r in cases:
                answer = assistant.answer(r["question"])
                gold = [g.lower() for g in r["answers"]]
                declined += answer.abstained
                if not answer.abstained:
                    anywhere += any(g in answer.text.lower() for g in gold)
                    first += any(g in first_sentence(answer.text).lower() for g in gold)
        n = max(1, len(cases))
        out[folder.name] = {
            "questions": len(cases),
            "first_sentence_recall": round(first / n, 3),
            "answer_recall": round(anywhere / n, 3),
            "declined": round(declined / n, 3),
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
