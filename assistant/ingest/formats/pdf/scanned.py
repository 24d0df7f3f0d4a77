"""Pages of a PDF that are pictures of text (scans), read by OCR and put back among the others.

Which pages: with `ASSISTANT_OCR=auto` those `glyphs.py` found without usable text that draw an
image; with `always` every page (a scan whose hidden text layer is bad). Each is rendered by PDFium
at `ocr.DPI` (smaller if the page is huge: never more than `ocr.MAX_PIXELS`), then its OCR'd words
replace the page's characters, so the layout reads it like any other page.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from assistant.ingest.formats import ocr
from assistant.ingest.formats.pdf.glyphs import PDFIUM, PageGlyphs, PdfGlyphs, scanned_note


@dataclass(frozen=True)
class ScannedPages:
    """The pages after OCR, the page numbers OCR read, and the document's warnings."""

    pages: list[PageGlyphs]
    ocr_pages: tuple[int, ...]
    warnings: tuple[str, ...]


def read_scanned(data: bytes, glyphs: PdfGlyphs, options: ocr.OcrOptions, name: str = "") -> ScannedPages:
    """OCR the pages that need it (see the module docstring); the others are kept as they are."""
    wanted = [p.number for p in glyphs.pages] if options.mode == "always" else list(glyphs.scanned)
    if options.mode == "off" or not wanted:
        notes = glyphs.warnings
        if glyphs.scanned and len(glyphs.scanned) < len(glyphs.pages):
            notes = (scanned_note(glyphs.scanned), *notes)
        return ScannedPages(glyphs.pages, (), notes)
    import pypdfium2 as pdfium

    with PDFIUM, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        document = pdfium.PdfDocument(data)

    def picture(number: int):
        def render():
            with PDFIUM:
                page = document[number - 1]
                try:
                    width, height = page.get_size()
                    scale = min(ocr.DPI / 72, math.sqrt(ocr.MAX_PIXELS / max(width * height, 1.0)))
                    return page.render(scale=scale, grayscale=True).to_pil()
                finally:
                    page.close()

        return render

    try:
        run = ocr.read_pages(
            (ocr.Picture(n, picture(n)) for n in wanted),
            options,
            total=len(wanted),
            progress=ocr.console_progress(name),
        )
    except ocr.OcrUnavailable as exc:  # the text pages still count
        notes = (f"{scanned_note(glyphs.scanned)}: {exc}",) if glyphs.scanned else ()
        return ScannedPages(glyphs.pages, (), (*notes, *glyphs.warnings))
    finally:
        with PDFIUM:
            document.close()
    pages = [_with_size(run.pages.get(p.number), p) for p in glyphs.pages]
    found = tuple(n for n, page in sorted(run.pages.items()) if page.glyphs)
    empty = [n for n in glyphs.scanned if n in run.pages and not run.pages[n].glyphs]
    notes = list(run.warnings)
    if empty and len(empty) < len(glyphs.pages):
        notes.append(f"OCR found no text on {ocr.page_list(empty)}")
    return ScannedPages(pages, found, (*notes, *glyphs.warnings))


def _with_size(read: PageGlyphs | None, original: PageGlyphs) -> PageGlyphs:
    """The OCR'd page in the original page's size in points (the rendering may have been scaled)."""
    if read is None or (not read.glyphs and original.glyphs):  # not read, or OCR saw less than the text layer
        return original
    sx, sy = original.width / read.width, original.height / read.height
    if abs(sx - 1) < 1e-6 and abs(sy - 1) < 1e-6:
        return read
    glyphs = tuple(type(g)(g.char, g.x0 * sx, g.y0 * sy, g.x1 * sx, g.y1 * sy, g.space, g.newline) for g in read.glyphs)
    return PageGlyphs(original.number, original.width, original.height, glyphs)
