"""PDF text from PDFium's character boxes: glyphs, then lines, then the page's reading order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assistant.ingest.limits import pdf_limits, pdf_within
from assistant.schema import Document, Skipped
from assistant.settings import MB

if TYPE_CHECKING:  # ocr reads glyphs from this package: imported when a PDF is read
    from assistant.ingest.formats.ocr import OcrOptions

_BYTES_PER_CHAR = 10  # page content a PDF may make extraction read, per character allowed (~2 min)


def load(name: str, data: bytes, max_chars: int, ocr: OcrOptions | None = None) -> Document | Skipped:
    """A PDF's text, after checking what its page streams expand to (a decompression bomb is refused).

    Args:
        ocr: How pages without a text layer are read (default: the environment's settings).
    """
    budget = max(max_chars * _BYTES_PER_CHAR, MB)
    if not pdf_within(data, budget):
        reason = f"page content expands to more than {budget / 1e6:,.0f} MB (possible decompression bomb)"
        return Skipped(name, reason)
    with pdf_limits(budget):
        if ocr is None:
            from assistant.ingest.formats.ocr import OcrOptions

            ocr = OcrOptions.from_settings()
        return _read(name, data, ocr)


def _read(name: str, data: bytes, ocr: OcrOptions) -> Document | Skipped:
    """Text in reading order, paragraph by paragraph, with each page's character range.

    How: `glyphs` (PDFium's character boxes) and `layout` (columns, paragraphs,
    hyphenation, headers and footnotes). Text the PDF loses (unreadable pages, images without
    text, undecodable fonts) is reported once as the document's warnings.
    """
    from assistant.ingest.formats.pdf.glyphs import PdfUnreadable, read_glyphs
    from assistant.ingest.formats.pdf.layout import PdfLayout, english_words
    from assistant.ingest.formats.pdf.scanned import read_scanned

    if b"%PDF-" not in data[:1024]:
        return Skipped(name, "corrupt or unreadable PDF: not a PDF file")
    try:
        glyphs = read_glyphs(data)
    except PdfUnreadable as exc:
        return Skipped(name, str(exc))
    read = read_scanned(data, glyphs, ocr, name)  # pages that are pictures: OCR
    result = PdfLayout(english_words(), boxes=bool(read.ocr_pages)).run(read.pages)
    if not result.pages:
        return Skipped(name, "no extractable text (scanned PDF?)")
    ocr_boxes = tuple(b for b in result.boxes if b.page in read.ocr_pages)
    return Document(name, result.text, result.pages, read.warnings, read.ocr_pages, ocr_boxes)
