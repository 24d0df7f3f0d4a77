"""The characters of a PDF with their boxes, read by PDFium (pypdfium2), upright and cleaned.

Why PDFium: it reads the characters and boxes of the 30 real-docs pages in about a tenth of the
time pypdf takes for their plain text, and every character's box is what reading order, columns,
footnotes and hyphenation are decided from (`pdf_lines.py`, `pdf_layout.py`). pdfminer.six gives
the same boxes at half pypdf's speed; pypdf's layout mode gives no boxes. pypdfium2 is
Apache-2.0/BSD-3 (see `bench/pdf_extraction.py`).

Here the characters are only read: spaces and line ends of the content stream become flags on the
next character, ligatures are spelled out, zero-width characters dropped, and glyphs that no font
maps to text are counted, so a PDF that loses text says so once instead of returning garbage.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from assistant.errors import DocumentError
from assistant.ingest.limits import step

# Characters the layout never sees: zero-width spaces and joiners, word joiner, BOM.
_INVISIBLE = frozenset({0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF})
_SPACES = frozenset({0x09, 0x20, 0xA0, 0x3000, *range(0x2000, 0x200B), 0x202F, 0x205F})
_LIGATURES = {0xFB00: "ff", 0xFB01: "fi", 0xFB02: "fl", 0xFB03: "ffi", 0xFB04: "ffl", 0xFB05: "st", 0xFB06: "st"}
HYPHEN_MARK = "\x02"  # PDFium's mark for a hyphen that ends a line (the word may continue below)
SOFT_HYPHEN = "\u00ad"
_QUARTER = math.pi / 2
_TILT = 0.1  # radians: text further than this from its page's reading direction is a stamp or label
# Undecodable characters are reported once they are this share of a document's characters (a few
# math symbols of a paper are not worth a warning; a font without any Unicode map is).
_LOST_SHARE = 0.01

PDFIUM = threading.Lock()  # PDFium is not thread-safe, not even across documents
_USABLE = 10  # a page drawing an image with fewer characters than this is a scan (a figure has a caption)
# Told (page number, pages) as each page is read, when an indexing run wants to show its progress.
PAGE_READ: ContextVar[Callable[[int, int], None] | None] = ContextVar("PAGE_READ", default=None)


class PdfUnreadable(DocumentError):
    """The PDF cannot be read at all; the message is the reason shown to the user."""


@dataclass(frozen=True, slots=True)
class Glyph:
    """One character and its loose box (font ascent to descent), in points, y growing upwards.

    `space` says the content stream separated it from the previous character by a space, `newline`
    that it started a new line there (PDFium's judgement, refined by geometry later).
    """

    char: str
    x0: float
    y0: float
    x1: float
    y1: float
    space: bool = False
    newline: bool = False

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass(frozen=True)
class PageGlyphs:
    """A page's characters in content-stream order, turned so that its text runs left to right."""

    number: int
    width: float
    height: float
    glyphs: tuple[Glyph, ...]


@dataclass(frozen=True)
class PdfGlyphs:
    """The pages' characters; `scanned` are the pages without usable text that draw an image
    (OCR reads them), `warnings` what else was lost."""

    pages: list[PageGlyphs]
    warnings: tuple[str, ...] = ()
    scanned: tuple[int, ...] = ()


def scanned_note(numbers: list[int] | tuple[int, ...]) -> str:
    """The warning for pages that are pictures of text when OCR does not read them."""
    what = "is an image" if len(numbers) == 1 else "are images"
    return f"{_pages(list(numbers))} {what} without text, not searchable (no OCR)"


def read_glyphs(data: bytes) -> PdfGlyphs:
    """Every page's characters; raises `PdfUnreadable` for an encrypted or broken file.

    Args:
        data: The bytes of a PDF file.
    """
    import pypdfium2 as pdfium

    with PDFIUM, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            text = str(exc).lower()
            if "password" in text or "security" in text:
                raise PdfUnreadable("encrypted PDF") from None
            raise PdfUnreadable(f"corrupt or unreadable PDF: {_reason(exc)}") from None
        try:
            return _read(document)
        finally:
            document.close()


def read_properties(data: bytes, pages: int = 1) -> tuple[dict[str, str], list[PageGlyphs]]:
    """The PDF's info dictionary and its first `pages` pages' characters (for a document's title block).

    Reads only those pages, so it costs little next to reading the whole file; raises `PdfUnreadable`.
    """
    import pypdfium2 as pdfium

    with PDFIUM, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise PdfUnreadable(f"corrupt or unreadable PDF: {_reason(exc)}") from None
        try:
            try:
                info = {k: str(v) for k, v in document.get_metadata_dict(skip_empty=True).items()}
            except Exception:
                info = {}
            read: list[PageGlyphs] = []
            for index in range(min(pages, len(document))):
                page = document[index]
                try:
                    read.append(_read_page(page, index + 1)[0])
                finally:
                    page.close()
            return info, read
        finally:
            document.close()


def _read(document) -> PdfGlyphs:
    pages: list[PageGlyphs] = []
    failed: list[int] = []
    images: list[int] = []
    lost = total = 0
    report = PAGE_READ.get()
    for index in range(len(document)):
        step()
        if report is not None:
            report(index, len(document))
        try:
            page = document[index]
        except Exception:  # one broken page should not lose the others
            failed.append(index + 1)
            continue
        try:
            read, found, page_lost = _read_page(page, index + 1)
            unusable = found < _USABLE or page_lost > found
            if unusable and _has_image(page):
                images.append(index + 1)
        except Exception:
            failed.append(index + 1)
            continue
        finally:
            page.close()
        lost += page_lost
        total += found + page_lost
        pages.append(read)
    notes = []
    if failed:
        notes.append(f"{_pages(failed)} could not be read; {'its' if len(failed) == 1 else 'their'} text is missing")
    if lost and lost >= _LOST_SHARE * total:
        notes.append(f"{lost} characters could not be decoded (a font without a Unicode map); that text is missing")
    return PdfGlyphs(pages, tuple(notes), tuple(images))


def _read_page(page, number: int) -> tuple[PageGlyphs, int, int]:
    """One page's glyphs turned upright, how many glyphs it has at any angle, and how many could not be
    decoded."""
    textpage = page.get_textpage()
    try:
        glyphs, lost = _page_glyphs(textpage)
    finally:
        textpage.close()
    width, height = page.get_size()
    return _upright(number, width, height, glyphs), len(glyphs), lost


def _page_glyphs(textpage) -> tuple[list[tuple[Glyph, float]], int]:
    """(glyph, angle) pairs of one page in stream order, and the number of undecodable glyphs."""
    import pypdfium2.raw as raw

    handle = textpage.raw
    rect = raw.FS_RECTF()
    out: list[tuple[Glyph, float]] = []
    space = newline = False
    lost = 0
    for i in range(raw.FPDFText_CountChars(handle)):
        code = raw.FPDFText_GetUnicode(handle, i)
        if code in (0x0A, 0x0D):
            newline = True
            continue
        if code in _SPACES:
            space = True
            continue
        if code in _INVISIBLE:
            continue
        if code == 0x02 and raw.FPDFText_IsHyphen(handle, i):
            char = HYPHEN_MARK
        elif code < 0x20 or code in (0xFFFD, 0xFFFE, 0xFFFF) or 0xE000 <= code <= 0xF8FF:
            lost += bool(raw.FPDFText_HasUnicodeMapError(handle, i)) or code >= 0xE000
            continue
        else:
            char = _LIGATURES.get(code) or chr(code)
        raw.FPDFText_GetLooseCharBox(handle, i, rect)
        glyph = Glyph(char, rect.left, rect.bottom, rect.right, rect.top, space, newline)
        out.append((glyph, raw.FPDFText_GetCharAngle(handle, i)))
        space = newline = False
    return out, lost


def _upright(number: int, width: float, height: float, glyphs: list[tuple[Glyph, float]]) -> PageGlyphs:
    """Turn the page so that most of its text runs left to right; text at other angles is dropped.

    PDFium gives each character's angle clockwise, in radians; a landscape page, or a portrait
    page printed sideways, reads in one of four directions.
    """
    votes = [0, 0, 0, 0]
    quarters = []
    for _, angle in glyphs:
        q = round(angle / _QUARTER)
        q = q % 4 if abs(angle - q * _QUARTER) <= _TILT else None
        quarters.append(q)
        if q is not None:
            votes[q] += 1
    turn = max(range(4), key=votes.__getitem__)
    # After turning, shift so the page again spans (0, 0) to (width, height): bands stay measurable.
    dx, dy = ((0.0, 0.0), (height, 0.0), (width, height), (0.0, width))[turn]
    kept = tuple(_turn(g, turn, dx, dy) for (g, _), q in zip(glyphs, quarters, strict=True) if q == turn)
    if turn % 2:
        width, height = height, width
    return PageGlyphs(number, width, height, kept)


def _turn(g: Glyph, quarter: int, dx: float, dy: float) -> Glyph:
    """Rotate a box counter-clockwise by `quarter` quarter turns, then shift it by (dx, dy)."""
    if quarter == 0:
        return g
    if quarter == 1:  # (x, y) -> (-y, x)
        box = (-g.y1, g.x0, -g.y0, g.x1)
    elif quarter == 2:  # (x, y) -> (-x, -y)
        box = (-g.x1, -g.y1, -g.x0, -g.y0)
    else:  # (x, y) -> (y, -x)
        box = (g.y0, -g.x1, g.y1, -g.x0)
    return Glyph(g.char, box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy, g.space, g.newline)


def _has_image(page) -> bool:
    import pypdfium2.raw as raw

    return any(True for _ in page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE], max_depth=2))


def _pages(numbers: list[int], limit: int = 5) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit]) + (", …" if len(numbers) > limit else "")
    return f"page {shown}" if len(numbers) == 1 else f"pages {shown}"


def _reason(exc: BaseException, limit: int = 100) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
