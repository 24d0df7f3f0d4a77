"""PDF extraction speed: the product's reader (PDFium character boxes + layout) against pypdf's default.

Reads the same PDFs (the real-docs PDFs by default, or the files given) in rounds, each reader
taking its turn in rotating order, so the load of a shared machine falls on all alike; the best
round of each counts. `chosen` is `assistant.ingest.loading.load_file` (everything the indexer does to a
PDF: PDFium, reading order, paragraphs, hyphenation); `pypdf` is `PdfReader(...).pages[i]
.extract_text()`, what the product used before. pypdf's layout mode and pdfminer.six (when
installed) are measured too, as the other candidates. Prints one JSON line; `ratio` is chosen
pages/s over pypdf pages/s (above 1: faster than pypdf).

    python bench/pdf_extraction.py [--rounds 3] [FILE.pdf ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import logging
import time
import warnings
from pathlib import Path

from _common import DATA


def chosen(path: Path) -> int:
    from assistant.ingest.loading import load_file

    doc = load_file(path)
    return len({span.page for span in doc.pages})


def pypdf_default(path: Path, mode: str = "plain") -> int:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(path.read_bytes()))
    for page in reader.pages:
        page.extract_text(extraction_mode=mode)
    return len(reader.pages)


def pypdf_layout(path: Path) -> int:
    return pypdf_default(path, "layout")


def pdfminer(path: Path) -> int:
    from pdfminer.high_level import extract_pages

    return sum(1 for _ in extract_pages(io.BytesIO(path.read_bytes())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    files = args.files or sorted((DATA / "real-docs" / "docs").glob("*.pdf"))
    logging.disable(logging.WARNING)  # pypdf's fontTools notices would only slow it down on the terminal
    warnings.simplefilter("ignore")
    readers = {"chosen": chosen, "pypdf": pypdf_default, "pypdf_layout": pypdf_layout}
    if importlib.util.find_spec("pdfminer") is not None:
        readers["pdfminer"] = pdfminer
    from pypdf import PdfReader

    pages = sum(len(PdfReader(f).pages) for f in files)
    chosen(files[0])  # imports and the word list, outside the clock
    best = {name: float("inf") for name in readers}
    names = list(readers)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            for f in files:
                readers[name](f)
            best[name] = min(best[name], time.perf_counter() - start)
    speed = {name: round(pages / seconds, 1) for name, seconds in best.items()}
    print(json.dumps({
        "files": len(files),
        "pages": pages,
        **{f"{name}_pages_per_s": value for name, value in speed.items()},
        "ratio": round(speed["chosen"] / speed["pypdf"], 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
