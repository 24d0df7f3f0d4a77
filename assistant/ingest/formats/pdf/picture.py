"""A PDF page as a picture, with a quote and the answer words inside it highlighted.

Why here: a citation of a PDF opens at its page as the reader saw it. PDFium renders the page and
gives each character's box; the quote is found among the page's characters by its letters and
digits alone (case, spaces, hyphens at line ends and ligatures aside), since the loaded text was
rejoined by the layout step. A quote that runs onto the next page is marked as far as it goes.
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from assistant.ingest.formats.pdf.glyphs import PDFIUM

_WIDTH = 900  # pixels: readable in the side panel, a few hundred KB as JPEG
_MIN_MATCH = 12  # letters: a shorter piece of a quote found on a page is not marked
_QUOTE = (250, 204, 21, 90)  # translucent yellow
_ANSWER = (234, 88, 12, 120)  # translucent orange


@dataclass(frozen=True)
class Box:
    """A highlighted rectangle, in pixels of the picture."""

    x0: int
    y0: int
    x1: int
    y1: int


@dataclass(frozen=True)
class PagePicture:
    """A rendered page: the image (JPEG), its size, and the boxes drawn on it."""

    image: bytes
    width: int
    height: int
    quote: list[Box] = field(default_factory=list)
    answer: list[Box] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.quote)


_OCR_DPI = 300  # as indexing reads a scanned page
_OCR_SECONDS = 60.0


def render_page(path: str | Path, page: int, quote: str = "", answer: str = "", width: int = _WIDTH) -> PagePicture:
    """Render page `page` (1-based) of the PDF at `path`, the quote and the answer words marked.

    Raises:
        ValueError: the page is not in the document.
        OSError / pdfium errors: the file cannot be read.
    """
    import pypdfium2 as pdfium

    with PDFIUM:
        pdf = pdfium.PdfDocument(str(path))
        try:
            if not 1 <= page <= len(pdf):
                raise ValueError(f"page {page} is not in the document ({len(pdf)} pages)")
            p = pdf[page - 1]
            w_pt, h_pt = p.get_size()
            scale = width / w_pt
            image = p.render(scale=scale).to_pil().convert("RGB")
            text = p.get_textpage()
            chars = _letters(text)
            quote_idx = _find(chars, quote)
            inside = set(quote_idx)
            answer_idx = _find([c for c in chars if c[1] in inside], answer) if answer and inside else []
            quote_boxes = _boxes(text, quote_idx, scale, h_pt)
            answer_boxes = _boxes(text, answer_idx, scale, h_pt)
            scan = None if chars or not quote else p.render(scale=_OCR_DPI / 72).to_pil()
        finally:
            pdf.close()
    if scan is not None:  # a page without a text layer, indexed by OCR: find the quote among its words
        quote_boxes, answer_boxes = _ocr_boxes(scan, quote, answer, image.width / scan.width)
    _draw(image, quote_boxes, _QUOTE)
    _draw(image, answer_boxes, _ANSWER)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80, optimize=True)
    return PagePicture(out.getvalue(), image.width, image.height, quote_boxes, answer_boxes)


def _ocr_boxes(scan, quote: str, answer: str, scale: float) -> tuple[list[Box], list[Box]]:
    """Boxes of the quote and the answer words on a scanned page, from its OCR words (as indexing read
    them), scaled to the rendered picture; none when OCR is not installed or fails."""
    from assistant.ingest.formats import ocr

    try:
        words = ocr.engine().read(scan.convert("RGB"), _OCR_SECONDS)
    except Exception:  # no Tesseract, or a page it cannot read: the page is shown unmarked
        return [], []
    chars = [(c, i) for i, w in enumerate(words) for c in _fold(w.text)]
    quote_idx = _find(chars, quote)
    inside = set(quote_idx)
    answer_idx = _find([c for c in chars if c[1] in inside], answer) if answer and inside else []

    def boxes(indices: list[int]) -> list[Box]:
        pad = 3
        return [
            Box(
                int((words[i].left - pad) * scale),
                int((words[i].top - pad) * scale),
                int((words[i].right + pad) * scale),
                int((words[i].bottom + pad) * scale),
            )
            for i in indices
        ]

    return boxes(quote_idx), boxes(answer_idx)


def _letters(textpage) -> list[tuple[str, int]]:
    """Each letter or digit of the page, folded (lowercase, ligatures spelled out), with its char index."""
    import pypdfium2.raw as raw

    out = []
    for i in range(textpage.count_chars()):
        ch = chr(raw.FPDFText_GetUnicode(textpage, i) or 32)
        for c in unicodedata.normalize("NFKC", ch).casefold():
            if c.isalnum():
                out.append((c, i))
    return out


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKC", text).casefold() if c.isalnum())


def _find(chars: list[tuple[str, int]], quote: str) -> list[int]:
    """Char indices of the quote on the page: all of it, else its longest start or end found here."""
    target = _fold(quote)
    if not target or not chars:
        return []
    hay = "".join(c for c, _ in chars)
    at = hay.find(target)
    if at >= 0:
        return sorted({chars[k][1] for k in range(at, at + len(target))})
    best: tuple[int, int] = (0, 0)  # (start in hay, length)
    for piece_of in (lambda n: target[:n], lambda n: target[-n:]):
        lo, hi = _MIN_MATCH, len(target) - 1
        while lo <= hi:  # the longest start (or end) of the quote that the page holds
            mid = (lo + hi) // 2
            k = hay.find(piece_of(mid))
            if k >= 0:
                if mid > best[1]:
                    best = (k, mid)
                lo = mid + 1
            else:
                hi = mid - 1
    start, length = best
    return sorted({chars[k][1] for k in range(start, start + length)}) if length else []


def _boxes(textpage, indices: list[int], scale: float, height: float) -> list[Box]:
    """One box per line of the marked characters (characters on the same line merge)."""
    boxes: list[list[float]] = []
    for i in indices:
        left, bottom, right, top = textpage.get_charbox(i)
        if right <= left or top <= bottom:
            continue
        if boxes and abs(boxes[-1][1] - bottom) < 0.5 * (top - bottom) and left >= boxes[-1][0] - 1:
            b = boxes[-1]
            b[2], b[3], b[1] = max(b[2], right), max(b[3], top), min(b[1], bottom)
        else:
            boxes.append([left, bottom, right, top])
    pad = 1.5
    return [
        Box(
            int((x0 - pad) * scale),
            int((height - y1 - pad) * scale),
            int((x1 + pad) * scale),
            int((height - y0 + pad) * scale),
        )
        for x0, y0, x1, y1 in boxes
    ]


def _draw(image, boxes: list[Box], colour: tuple[int, int, int, int]) -> None:
    from PIL import Image, ImageDraw

    if not boxes:
        return
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for b in boxes:
        draw.rectangle((b.x0, b.y0, b.x1, b.y1), fill=colour)
    image.paste(Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB"))
