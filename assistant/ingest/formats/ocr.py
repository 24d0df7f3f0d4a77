"""Optical character recognition: the words of a picture, with their boxes, as PDF-like glyphs.

OCR gives words and where they sit; everything after that is the PDF path's own (`pdf/lines.py`,
`pdf/layout.py`): each word becomes glyph boxes on a page of points, so lines, paragraphs, columns,
hyphenation and running headers are rebuilt by the same rules as typeset text.

Engine: Tesseract 5 (Apache-2.0, Debian's `tesseract-ocr`), driven by pytesseract. Measured
against RapidOCR on the real-docs pages (`bench/ocr.py`, `docs/ocr.md`): fewer character and word
errors on English print (RapidOCR's PP-OCR models often drop the spaces between English words),
a smaller install, and word boxes of its own rather than line boxes cut by character counts.

Bounds: an image is refused from its header when it declares more pixels than `MAX_PIXELS` (a
20 KB PNG can declare 100,000 × 100,000 pixels: 30 GB once decoded); a page is rendered at most
at that size; each page's recognition has a time limit, and a file at most `max_pages` pages.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from assistant.ingest.formats.pdf.glyphs import Glyph, PageGlyphs
from assistant.settings import OcrMode

if TYPE_CHECKING:
    from PIL.Image import Image

DPI = 300  # rendering resolution of a PDF page for OCR (Tesseract reads 10-12 pt print best at 300)
MAX_PIXELS = 60_000_000  # a 300 dpi A2 poster; a 300 dpi A4 page is 8.7 million
_POINTS = 72.0
_GAP = 1.5  # a space wider than this many line heights inside one OCR line starts a new run
_SAME_TYPE = 0.65  # a line at least this share of the usual line height is taken as the same type size


class OcrUnavailable(Exception):
    """The OCR engine is not installed; the message says what to install."""


class OcrTimeout(Exception):
    """One page took longer than the time allowed for it."""


@dataclass(frozen=True)
class OcrOptions:
    """How OCR runs: `mode` (auto: pages without usable text; off; always: every page), the
    Tesseract language(s) (`eng`, `eng+deu`), the most pages read per file, seconds per page, and
    pages read at once (two: one Tesseract process per core of a 2-core machine)."""

    mode: OcrMode = "auto"
    language: str = "eng"
    max_pages: int = 100
    page_seconds: float = 120.0
    workers: int = field(default_factory=lambda: max(1, min(2, os.cpu_count() or 1)))  # pages read at once

    @classmethod
    def from_settings(cls, settings=None) -> OcrOptions:
        """The OCR fields of `Settings` (by default the environment's `ASSISTANT_OCR*` variables)."""
        if settings is None:
            from assistant.settings import Settings

            settings = Settings.from_env()
        return cls(settings.ocr, settings.ocr_language, settings.ocr_max_pages, settings.ocr_page_seconds)


@dataclass(frozen=True)
class OcrWord:
    """A recognised word and its box in pixels (origin top left); `line` numbers the engine's lines."""

    text: str
    left: float
    top: float
    right: float
    bottom: float
    line: int
    confidence: float = 1.0


@dataclass(frozen=True)
class OcrPage:
    """What OCR read on one picture: its words, and the picture's size in pixels and resolution."""

    words: tuple[OcrWord, ...]
    width: int
    height: int
    dpi: float = DPI


class OcrEngine(Protocol):
    """Reads the words of one picture; raises `OcrTimeout` past `timeout` seconds."""

    def read(self, image: Image, timeout: float) -> list[OcrWord]: ...


@dataclass(frozen=True)
class Picture:
    """A page to OCR: its number, and how to make its picture (rendered or decoded only when its turn comes)."""

    number: int
    load: Callable[[], Image]


@dataclass
class TesseractEngine:
    """Tesseract through pytesseract: one `tesseract` process per page, killed at the time limit.

    `OMP_THREAD_LIMIT=1`: Tesseract's OpenMP threads cost more than they give on a shared 2-core
    machine (and several pages can then be read at once).
    """

    language: str = "eng"
    min_confidence: float = 0.0

    def read(self, image: Image, timeout: float) -> list[OcrWord]:
        try:
            import pytesseract
        except ImportError:
            raise OcrUnavailable("OCR needs pytesseract (pip install pytesseract)") from None
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        try:
            data = pytesseract.image_to_data(
                image, lang=self.language, config="--psm 3", timeout=timeout, output_type=pytesseract.Output.DICT
            )
        except pytesseract.TesseractNotFoundError:
            raise OcrUnavailable("OCR needs Tesseract (apt-get install tesseract-ocr tesseract-ocr-eng)") from None
        except RuntimeError as exc:
            if "timeout" in str(exc).lower():
                raise OcrTimeout(str(exc)) from None
            raise
        except pytesseract.TesseractError as exc:
            if "language" in str(exc).lower() or "traineddata" in str(exc).lower():
                raise OcrUnavailable(f"Tesseract has no '{self.language}' language data installed") from None
            raise
        words = []
        lines: dict[tuple, int] = {}
        for i, text in enumerate(data["text"]):
            text = text.strip()
            conf = float(data["conf"][i])
            if not text or conf < self.min_confidence:
                continue
            key = (data["page_num"][i], data["block_num"][i], data["par_num"][i], data["line_num"][i])
            line = lines.setdefault(key, len(lines))
            left, top = data["left"][i], data["top"][i]
            words.append(OcrWord(text, left, top, left + data["width"][i], top + data["height"][i], line, conf / 100))
        return words


@dataclass
class RapidOcrEngine:
    """RapidOCR (PP-OCR models in ONNX, Apache-2.0): line boxes, cut into words by character share.

    Kept for `bench/ocr.py`, which chose Tesseract over it (see the module docstring).
    """

    _engine: object = field(default=None, repr=False)

    def read(self, image: Image, timeout: float) -> list[OcrWord]:
        import numpy as np

        if self._engine is None:
            from rapidocr_onnxruntime import RapidOCR

            self._engine = RapidOCR()
        result, _ = self._engine(np.asarray(image.convert("RGB"))[:, :, ::-1])
        words = []
        for line, (quad, text, score) in enumerate(result or []):
            xs, ys = [p[0] for p in quad], [p[1] for p in quad]
            left, right, top, bottom = min(xs), max(xs), min(ys), max(ys)
            per_char = (right - left) / max(len(text), 1)
            pos = 0
            for part in text.split(" "):
                if part:
                    x0 = left + pos * per_char
                    words.append(OcrWord(part, x0, top, x0 + len(part) * per_char, bottom, line, float(score)))
                pos += len(part) + 1
        return words


def engine(language: str = "eng") -> OcrEngine:
    return TesseractEngine(language)


def recognise(image: Image, ocr: OcrEngine, timeout: float, dpi: float = DPI) -> OcrPage:
    """OCR one picture (greyscale, as Tesseract binarises it anyway)."""
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    return OcrPage(tuple(ocr.read(image, timeout)), image.width, image.height, dpi)


def page_glyphs(number: int, page: OcrPage) -> PageGlyphs:
    """The words of a page as glyphs on a page of points (y upwards), the way PDFium reports text.

    Each word's box is shared out among its letters; every letter spans the height of its line
    (Tesseract's word boxes hug the ink, so "was" would look smaller than "Hold"). The first letter
    of a word after another on its line carries the space, the first of a line the line break; so
    does a word far from the one before it (Tesseract may read two columns' lines as one), and the
    layout then decides, as for a PDF, whether the two are one line.
    """
    scale = _POINTS / page.dpi
    height = page.height * scale
    bands: dict[int, tuple[float, float]] = {}
    for w in page.words:
        top, bottom = bands.get(w.line, (w.top, w.bottom))
        bands[w.line] = (min(top, w.top), max(bottom, w.bottom))
    # A line without descenders ("The first model") hugs its ink a quarter less tall than one with
    # them, and the layout would take it for smaller type: such lines get the page's usual height.
    usual = statistics.median(b - t for t, b in bands.values()) if bands else 0.0
    for line, (top, bottom) in bands.items():
        if _SAME_TYPE * usual <= bottom - top < usual:
            bands[line] = (top, top + usual)
    glyphs: list[Glyph] = []
    last: OcrWord | None = None
    for w in page.words:
        top, bottom = bands[w.line]
        y0, y1 = height - bottom * scale, height - top * scale
        step = (w.right - w.left) / len(w.text)
        same = last is not None and last.line == w.line and w.left - last.right <= _GAP * (bottom - top)
        for k, char in enumerate(w.text):
            x0 = (w.left + k * step) * scale
            first = k == 0
            glyphs.append(Glyph(char, x0, y0, x0 + step * scale, y1, space=first and same, newline=first and not same))
        last = w
    return PageGlyphs(number, page.width * scale, height, tuple(glyphs))


@dataclass(frozen=True)
class OcrRun:
    """The pages OCR read (glyphs by page number), and what it could not read, in words."""

    pages: dict[int, PageGlyphs]
    not_read: tuple[int, ...] = ()
    timed_out: tuple[int, ...] = ()
    warnings: tuple[str, ...] = ()


def read_pages(
    pictures: Iterable[Picture],
    options: OcrOptions,
    *,
    total: int,
    ocr: OcrEngine | None = None,
    dpi: float = DPI,
    progress: Callable[[int, int], None] | None = None,
) -> OcrRun:
    """OCR pictures up to the file's page limit.

    Pages past `options.max_pages`, pages over the time limit and pages whose picture cannot be
    decoded are left out and named in the run's warnings; the rest is kept. Pictures are made one
    at a time here (PDFium renders one page at a time anyway) while up to `workers` pages are
    read at once, one Tesseract process each; at most `workers + 1` pictures are held.
    """
    ocr = ocr or engine(options.language)
    pages: dict[int, PageGlyphs] = {}
    not_read: list[int] = []
    timed_out: list[int] = []
    failed: list[int] = []
    wanted = min(total, options.max_pages)
    done = submitted = 0
    pending: deque[tuple[int, Future]] = deque()

    def collect() -> None:
        nonlocal done
        number, future = pending.popleft()
        try:
            pages[number] = page_glyphs(number, future.result())
        except OcrTimeout:
            timed_out.append(number)
        except OcrUnavailable:
            raise
        except Exception:
            failed.append(number)
        done += 1
        if progress is not None:
            progress(done, wanted)

    with ThreadPoolExecutor(options.workers) as pool:
        try:
            for picture in pictures:
                number = picture.number
                if submitted >= options.max_pages:
                    not_read.append(number)
                    continue
                submitted += 1
                try:
                    image = picture.load()
                except Exception:
                    failed.append(number)
                    continue
                pending.append((number, pool.submit(recognise, image, ocr, options.page_seconds, dpi)))
                del image
                while len(pending) > options.workers:
                    collect()
            while pending:
                collect()
        finally:
            for _, future in pending:
                future.cancel()
    notes = []
    if not_read:
        notes.append(
            f"OCR stopped at {options.max_pages} pages (ASSISTANT_OCR_MAX_PAGES): {page_list(not_read)} not read"
        )
    if timed_out:
        notes.append(f"OCR of {page_list(timed_out)} took over {options.page_seconds:g} s (ASSISTANT_OCR_PAGE_SECONDS)"
                     "; not read")  # fmt: skip
    if failed:
        notes.append(f"OCR could not read {page_list(failed)}")
    return OcrRun(pages, tuple(not_read), tuple(timed_out), tuple(notes))


def console_progress(name: str) -> Callable[[int, int], None]:
    """A progress line on stderr for a file's OCR ("OCR notes.pdf: page 3/12"), counting OCR'd pages."""
    import sys

    started = time.monotonic()

    def show(done: int, total: int) -> None:
        if total > 1 and sys.stderr.isatty():
            end = "\n" if done >= total else "\r"
            rate = done / max(time.monotonic() - started, 1e-6)
            print(f"OCR {os.path.basename(name)}: page {done}/{total} ({rate:.2f} pages/s)", end=end, file=sys.stderr)

    return show


def page_list(numbers: list[int], limit: int = 8) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit]) + (
        f", … ({len(numbers)} in all)" if len(numbers) > limit else ""
    )
    return f"page {shown}" if len(numbers) == 1 else f"pages {shown}"
