"""What each hostile file of issue #26 costs to load: seconds, peak memory, outcome (one JSON line each).

Every file is built here (tests/hostile_files.py) and loaded by `load_file` in a child process under
an address-space limit and a wall-clock limit, so a file that would eat the machine only kills the
child. Peak memory is the larger of the child's and its parse worker's maximum resident set.

    python bench/hostile_files.py [--only NAME ...] [--memory-mb 6000] [--seconds 150]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import hostile_files as hf  # noqa: E402

CASES = {
    "pdf-forms-4x100": lambda p: p.write_bytes(hf.nested_forms_pdf(4, 100)),
    "pdf-forms-5x60": lambda p: p.write_bytes(hf.nested_forms_pdf(5, 60)),
    "xlsx-sparse-dimension": hf.sparse_xlsx,
    "xlsx-wide-rows": hf.wide_xlsx,
    "html-nested-10000": lambda p: p.write_text(hf.nested_html(10_000)),
    "epub-nested-10000": hf.nested_epub,
    "eml-12500-parts": lambda p: p.write_bytes(hf.many_parts_eml(12_500)),
    "eml-25000-parts": lambda p: p.write_bytes(hf.many_parts_eml(25_000)),
    "epub-utf16-entities": hf.epub_utf16_entities,
    "csv-8M-columns": lambda p: p.write_bytes(hf.wide_csv()),
    "pptx-2500-slides": hf.big_pptx,
}
SUFFIX = {kind: f".{kind}" for kind in ("pdf", "xlsx", "html", "epub", "eml", "csv", "pptx")}

CHILD = """
import json, resource, sys, time
from pathlib import Path
from assistant.ingest.loading import load_file
started = time.monotonic()
loaded = load_file(Path(sys.argv[1]))
elapsed = time.monotonic() - started
try:
    from assistant.ingest.worker import shutdown
    shutdown()  # the worker's peak counts once it has ended
except ImportError:
    pass
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
outcome = f"skipped: {loaded.reason}" if hasattr(loaded, "reason") else f"loaded {len(loaded.text):,} characters"
print(json.dumps({"seconds": round(elapsed, 2), "peak_mb": round(peak / 1024), "outcome": outcome}))
"""


def run(name: str, folder: Path, memory_mb: int, seconds: float) -> dict:
    path = folder / f"{name}{SUFFIX[name.split('-')[0]]}"
    CASES[name](path)
    row = {"case": name, "file_kb": round(path.stat().st_size / 1024, 1)}

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 1024 * 1024,) * 2)

    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(path)],
            capture_output=True,
            text=True,
            timeout=seconds,
            preexec_fn=limit,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return row | {"seconds": seconds, "outcome": f"killed after {seconds:g} s"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return row | {"seconds": round(time.monotonic() - started, 1), "outcome": f"exit {done.returncode}: {tail}"}
    return row | json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="cases to run (default: all)")
    parser.add_argument("--memory-mb", type=int, default=6000, help="address-space limit of the child")
    parser.add_argument("--seconds", type=float, default=150, help="wall-clock limit of the child")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for name in args.only or CASES:
            print(json.dumps(run(name, Path(folder), args.memory_mb, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
