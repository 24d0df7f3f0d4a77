"""OCR engines on this project's PDFs (quality against the text layer, speed), and answers from scans.

Quality (`--engines`): sample pages of the real-docs and doc-questions PDFs are rendered by PDFium
(grey, `--dpi`), read by each engine, and their words go through the product's own layout
(`pdf/lines.py`, `pdf/layout.py`); the same page's text layer through the same layout is the
reference. CER and WER are edit distances over characters and words (whitespace collapsed),
divided by the reference length; pages/s is OCR alone, rendering aside, with both cores in use
(Tesseract: two pages at once, one thread each; RapidOCR: one page at a time, onnxruntime's threads).

Answers (`--answers`): every page of each real-docs PDF is rendered and wrapped as an image-only PDF
(no text layer; the product OCRs it), both folders are indexed, and the real-docs questions are
asked of each: answer recall and the gap in points.

    python bench/ocr.py --json                       # both parts, ~10 min on 2 busy cores
    python bench/ocr.py --engines tesseract,rapidocr --pages 3 --no-answers
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA

from assistant.ingest.formats import ocr
from assistant.ingest.formats.pdf.glyphs import read_glyphs
from assistant.ingest.formats.pdf.layout import PdfLayout, english_words

PDFS = sorted({*(DATA / "real-docs" / "docs").glob("*.pdf"), *(DATA / "doc-questions" / "docs").glob("*.pdf")})


def distance(a: list, b: list) -> int:
    """Levenshtein distance between two sequences (two rows; characters or words)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def sample_pages(per_file: int) -> list[tuple[Path, int]]:
    """`per_file` pages spread over each distinct PDF (the same file in both folders counts once)."""
    import pypdfium2 as pdfium

    seen, out = set(), []
    for path in PDFS:
        data = path.read_bytes()
        if data in seen:
            continue
        seen.add(data)
        n = len(pdfium.PdfDocument(data))
        step = max(n // per_file, 1)
        out += [(path, i) for i in range(0, n, step)][:per_file]
    return out


def render(path: Path, index: int, dpi: int):
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(path.read_bytes())
    return document[index].render(scale=dpi / 72, grayscale=True).to_pil()


def reference(path: Path, index: int) -> str:
    page = read_glyphs(path.read_bytes()).pages[index]
    return PdfLayout(english_words()).run([page]).text


def quality(engines: list[str], per_file: int, dpi: int) -> dict:
    pages = sample_pages(per_file)
    if not pages:
        raise SystemExit(f"no PDFs under {DATA} (set BENCH_DATA to the shared data folder)")
    images = [render(p, i, dpi) for p, i in pages]
    refs = [reference(p, i) for p, i in pages]
    out = {"pages": [f"{p.name}#{i + 1}" for p, i in pages], "dpi": dpi}
    for name in engines:
        if name == "rapidocr" and importlib.util.find_spec("rapidocr_onnxruntime") is None:
            out[name] = {"missing": 'pip install -e ".[bench]"'}
            continue
        engine = ocr.TesseractEngine() if name == "tesseract" else ocr.RapidOcrEngine()
        if name == "rapidocr":
            engine.read(images[0].crop((0, 0, 200, 200)), 60)  # load the models outside the clock
        workers = 2 if name == "tesseract" else 1
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            read = list(pool.map(lambda im, e=engine: ocr.recognise(im, e, 600, dpi), images))
        seconds = time.perf_counter() - start
        cer, wer = [], []
        for page, ref, (_, index) in zip(read, refs, pages, strict=True):
            text = PdfLayout(english_words()).run([ocr.page_glyphs(index + 1, page)]).text
            hyp_words, ref_words = text.split(), ref.split()
            cer.append(
                distance(list(" ".join(hyp_words)), list(" ".join(ref_words))) / max(len(" ".join(ref_words)), 1)
            )
            wer.append(distance(hyp_words, ref_words) / max(len(ref_words), 1))
        out[name] = {
            "cer": round(statistics.mean(cer), 4),
            "wer": round(statistics.mean(wer), 4),
            "cer_per_page": [round(c, 3) for c in cer],
            "pages_per_s": round(len(images) / seconds, 3),
            "seconds": round(seconds, 1),
        }
        print(f"{name}: {out[name]}", file=sys.stderr)
    return out


def image_only_copy(path: Path, dest: Path, dpi: int) -> None:
    """Each page rendered and wrapped as an image-only PDF page (no text layer)."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(path.read_bytes())
    images = [document[i].render(scale=dpi / 72, grayscale=True).to_pil() for i in range(len(document))]
    images[0].save(dest, save_all=True, append_images=images[1:], resolution=dpi)


def answers(dpi: int, limit: int | None, workdir: Path | None = None) -> dict:
    from assistant import Assistant
    from assistant.evaluation.squad import evaluate_qa, load_questions
    from assistant.settings import Settings

    source = DATA / "real-docs"
    out: dict = {"dpi": dpi}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = workdir or Path(scratch)  # a kept workdir reuses its indexes (unchanged files are not read again)
        scans = Path(tmp) / "scans"
        (scans / "docs").mkdir(parents=True, exist_ok=True)
        shutil.copy(source / "questions.jsonl", scans / "questions.jsonl")
        for pdf in sorted((source / "docs").glob("*.pdf")):
            if not (scans / "docs" / pdf.name).exists():
                image_only_copy(pdf, scans / "docs" / pdf.name, dpi)
        replies: dict[str, dict[str, str]] = {}
        for label, folder in (("original", source), ("scanned", scans)):
            settings = Settings.from_env(index_dir=Path(tmp) / f"index-{label}", progress=False)
            start = time.perf_counter()
            assistant = Assistant(settings=settings)
            report = assistant.index([folder / "docs"])
            indexed = time.perf_counter() - start
            result = evaluate_qa(assistant, folder, limit=limit, index=False)
            for q in load_questions(folder / "questions.jsonl", limit):
                reply = assistant.answer(q["question"])
                replies.setdefault(q["question"], {"gold": q.get("answers")})[label] = reply.short or reply.text[:80]
            out[label] = {
                "answer_recall": result["answer_recall"],
                "context_recall@4": result["context_recall@4"],
                "f1": result["f1"],
                "index_seconds": round(indexed, 1),
                "ocr_pages": report.ocr_pages,
                "warnings": [w.reason for w in report.warnings],
            }
            print(f"{label}: {out[label]}", file=sys.stderr)
    out["gap_points"] = round(100 * (out["original"]["answer_recall"] - out["scanned"]["answer_recall"]), 1)
    out["replies"] = replies
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--engines", default="tesseract,rapidocr")
    parser.add_argument("--pages", type=int, default=3, help="sample pages per distinct PDF")
    parser.add_argument("--dpi", type=int, default=ocr.DPI)
    parser.add_argument("--no-answers", action="store_true")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--limit", type=int, default=None, help="questions")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the scans and indexes here, reuse them")
    args = parser.parse_args()
    result = {}
    if not args.no_quality:
        result["quality"] = quality([e for e in args.engines.split(",") if e], args.pages, args.dpi)
    if not args.no_answers:
        result["answers"] = answers(args.dpi, args.limit, args.workdir)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
