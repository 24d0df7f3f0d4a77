"""Questions about whole documents (who wrote it, what is it about, and what the files do not say).

Indexes a doc-questions folder (`docs/` and `questions.json`, default ../shared/data/doc-questions)
into a temporary index and asks every question through `Assistant.answer`, judged as
`questions.json` says: name (the answer and a cited passage contain one of `any`), about (the
answer has at least `need` of `terms` and cites `file`), decline (the answer abstains). Prints the
score per kind, and each failure, as JSON.

    python bench/whole_documents.py [FOLDER] [--show]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import DATA

from assistant import Assistant


def judge(case: dict, answer) -> bool:
    text = answer.text.lower()
    if case["kind"] == "decline":
        return answer.abstained
    if answer.abstained:
        return False
    if case["kind"] == "name":
        names = [n.lower() for n in case["any"]]
        return any(n in text for n in names) and any(n in c.text.lower() for c in answer.citations for n in names)
    if case["kind"] == "about":
        hits = sum(t.lower() in text for t in case["terms"])
        cited = any(Path(c.source).name == case["file"] for c in answer.citations)
        return hits >= case["need"] and cited
    raise ValueError(f"unknown kind {case['kind']!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DATA / "doc-questions")
    parser.add_argument("--show", action="store_true", help="print every answer, not only the failures")
    args = parser.parse_args()
    cases = json.loads((args.folder / "questions.json").read_text())["cases"]
    with tempfile.TemporaryDirectory() as index:
        assistant = Assistant(index_dir=index, progress=False)
        started = time.perf_counter()
        assistant.index([args.folder / "docs"])
        indexed = time.perf_counter() - started
        per_kind: dict[str, list[bool]] = {}
        shown = []
        for case in cases:
            answer = assistant.answer(case["q"])
            ok = judge(case, answer)
            per_kind.setdefault(case["kind"], []).append(ok)
            if args.show or not ok:
                shown.append({"q": case["q"], "ok": ok, "answer": answer.text[:400], "generator": answer.generator})
    out = {kind: {"score": round(sum(v) / len(v), 3), "passed": sum(v), "of": len(v)} for kind, v in per_kind.items()}
    out["all"] = round(sum(sum(v) for v in per_kind.values()) / len(cases), 3)
    out["index_seconds"] = round(indexed, 1)
    out["answers" if args.show else "failures"] = shown
    print(json.dumps(out, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
