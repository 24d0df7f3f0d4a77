"""OCR: scanned PDF pages and pictures become text with pages and word boxes, within limits.

Every scan is made here: a page typeset by reportlab, rendered by PDFium, saved as PNG, TIFF or
an image-only PDF; the real Tesseract reads it.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest

from assistant.errors import InputError
from assistant.ingest.chunking import Chunker
from assistant.ingest.formats import ocr
from assistant.ingest.formats.pdf.glyphs import read_glyphs
from assistant.ingest.formats.pdf.layout import PdfLayout
from assistant.ingest.loading import load_file
from assistant.schema import Document, Skipped
from assistant.settings import Settings

FIRST = [
    "The lighthouse keeper rowed to the harbour every Tuesday morning.",
    "She carried forty loaves of rye bread for the fishermen.",
]
SECOND = [
    "The orchard behind the mill grows seventeen kinds of apples.",
    "Pickers arrive in October when the frost begins.",
]
THIRD = ["The museum opens its winter exhibition about glaciers in December."]
DPI = 200


def typeset(pages: list[list[str]], size: int = 14) -> bytes:
    """A PDF with a text layer: each page's lines in Helvetica."""
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    for lines in pages:
        pdf.setFont("Helvetica", size)
        for i, line in enumerate(lines):
            pdf.drawString(72, 720 - i * 2 * size, line)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def pictures(pdf: bytes, dpi: int = DPI) -> list:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(pdf)
    return [document[i].render(scale=dpi / 72, grayscale=True).to_pil() for i in range(len(document))]


def image_only_pdf(path: Path, pages: list[list[str]]) -> Path:
    images = pictures(typeset(pages))
    images[0].save(path, save_all=True, append_images=images[1:], resolution=DPI)
    return path


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares `width` × `height` pixels (its data is a few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(autouse=True)
def _ocr_defaults(monkeypatch):
    for name in ("ASSISTANT_OCR", "ASSISTANT_OCR_MAX_PAGES", "ASSISTANT_OCR_PAGE_SECONDS", "ASSISTANT_OCR_LANGUAGE"):
        monkeypatch.delenv(name, raising=False)


def test_a_png_is_read_with_its_words_where_they_are_printed(tmp_path):
    pdf = typeset([FIRST])
    path = tmp_path / "note.png"
    pictures(pdf)[0].save(path, dpi=(DPI, DPI))

    doc = load_file(path)

    assert isinstance(doc, Document), doc
    assert "lighthouse keeper rowed to the harbour" in doc.text
    assert "forty loaves of rye bread" in doc.text
    assert doc.ocr_pages == (1,)
    assert [span.page for span in doc.pages] == [1]
    # The box of "loaves" is where reportlab printed it (as the text layer's characters say).
    start = doc.text.index("loaves")
    (box,) = doc.boxes_between(start, start + len("loaves"))
    assert doc.text[box.start : box.end] == "loaves"
    layer = read_glyphs(pdf).pages[0]
    letters = "".join(g.char for g in layer.glyphs)
    at = letters.index("loaves")
    printed = layer.glyphs[at : at + len("loaves")]
    left, right = printed[0].x0 / layer.width, printed[-1].x1 / layer.width
    top, bottom = 1 - max(g.y1 for g in printed) / layer.height, 1 - min(g.y0 for g in printed) / layer.height
    assert box.left == pytest.approx(left, abs=0.01) and box.right == pytest.approx(right, abs=0.01)
    assert box.top < bottom and box.bottom > top  # the same line
    assert abs((box.top + box.bottom) / 2 - (top + bottom) / 2) < 0.01
    # Every box locates its word exactly.
    assert all(doc.text[b.start : b.end].strip() and 0 <= b.left < b.right <= 1 for b in doc.boxes)


def test_a_multi_page_tiff_is_pages(tmp_path):
    images = pictures(typeset([FIRST, SECOND]))
    path = tmp_path / "scan.tiff"
    images[0].save(path, save_all=True, append_images=images[1:], compression="tiff_deflate", dpi=(DPI, DPI))

    doc = load_file(path)

    assert isinstance(doc, Document), doc
    assert doc.ocr_pages == (1, 2)
    assert doc.page_at(doc.text.index("lighthouse")) == 1
    assert doc.page_at(doc.text.index("seventeen kinds of apples")) == 2
    assert {b.page for b in doc.boxes} == {1, 2}


def test_jpeg_and_webp_are_read(tmp_path):
    image = pictures(typeset([SECOND]))[0]
    for suffix, kind in ((".jpg", "JPEG"), (".webp", "WEBP")):
        path = tmp_path / f"photo{suffix}"
        image.save(path, kind, quality=90)
        doc = load_file(path)
        assert isinstance(doc, Document), (suffix, doc)
        assert "seventeen kinds of apples" in doc.text


def joined(path: Path, parts: list[bytes]) -> Path:
    """One PDF of the pages of several PDFs (given as bytes), in order."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for part in parts:
        for page in PdfReader(io.BytesIO(part)).pages:
            writer.add_page(page)
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def test_only_the_scanned_page_of_a_pdf_is_ocr_read_and_its_passages_say_so(tmp_path):
    scan = image_only_pdf(tmp_path / "scan.pdf", [SECOND]).read_bytes()
    doc = load_file(joined(tmp_path / "mixed.pdf", [typeset([FIRST]), scan, typeset([THIRD])]))

    assert isinstance(doc, Document), doc
    assert doc.ocr_pages == (2,)
    assert doc.warnings == ()
    assert doc.page_at(doc.text.index("seventeen kinds of apples")) == 2
    assert doc.page_at(doc.text.index("glaciers")) == 3
    assert doc.boxes and {b.page for b in doc.boxes} == {2}  # the text layer pages need no stored boxes
    words = lambda texts: [len(t.split()) for t in texts]  # noqa: E731
    chunks = Chunker(words, max_tokens=20, overlap_tokens=0, limit=512).split(doc)
    by_page = {c.page: c.ocr for c in chunks}
    assert by_page == {1: False, 2: True, 3: False}


def test_ocr_off_skips_pictures_and_says_which_pages_were_not_read(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_OCR", "off")
    png = tmp_path / "note.png"
    pictures(typeset([FIRST]))[0].save(png)
    assert load_file(png) == Skipped(load_file(png).path, "a picture, and OCR is off (ASSISTANT_OCR=off)")
    scanned = image_only_pdf(tmp_path / "scan.pdf", [FIRST])
    assert load_file(scanned).reason == "no extractable text (scanned PDF?)"


def test_ocr_always_reads_pages_that_have_text(tmp_path, monkeypatch):
    path = tmp_path / "typed.pdf"
    path.write_bytes(typeset([FIRST]))
    assert load_file(path).ocr_pages == ()
    monkeypatch.setenv("ASSISTANT_OCR", "always")
    doc = load_file(path)
    assert doc.ocr_pages == (1,)
    assert "forty loaves of rye bread" in doc.text


def test_pages_past_the_limit_are_named_and_the_rest_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_OCR_MAX_PAGES", "1")
    pdf = image_only_pdf(tmp_path / "scan.pdf", [FIRST, SECOND, THIRD])
    doc = load_file(pdf)
    assert isinstance(doc, Document), doc
    assert doc.ocr_pages == (1,)
    assert "lighthouse" in doc.text and "apples" not in doc.text
    assert doc.warnings == ("OCR stopped at 1 pages (ASSISTANT_OCR_MAX_PAGES): pages 2, 3 not read",)

    images = pictures(typeset([FIRST, SECOND, THIRD]))
    tiff = tmp_path / "scan.tif"
    images[0].save(tiff, save_all=True, append_images=images[1:], dpi=(DPI, DPI))
    doc = load_file(tiff)
    assert doc.ocr_pages == (1,)
    assert doc.warnings == ("OCR stopped at 1 pages (ASSISTANT_OCR_MAX_PAGES): pages 2–3 not read",)


def test_a_page_over_the_time_limit_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_OCR_PAGE_SECONDS", "0.001")  # Tesseract cannot even start in time
    scan = image_only_pdf(tmp_path / "scan.pdf", [SECOND]).read_bytes()
    doc = load_file(joined(tmp_path / "mixed.pdf", [typeset([FIRST]), scan]))
    assert isinstance(doc, Document), doc
    assert "lighthouse" in doc.text and "apples" not in doc.text
    assert doc.warnings == ("OCR of page 2 took over 0.001 s (ASSISTANT_OCR_PAGE_SECONDS); not read",)


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (9_000, 9_000)])
def test_an_image_bomb_is_refused_before_it_is_decoded(tmp_path, width, height):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_declaring(width, height))
    assert path.stat().st_size < 200
    result = load_file(path)
    assert isinstance(result, Skipped)
    assert result.reason == (
        f"picture of {width:,} × {height:,} pixels is over the 60 million pixels OCR reads "
        "(possible decompression bomb)"
    )


def test_a_broken_picture_is_skipped_with_a_reason(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a picture" * 10)
    assert load_file(path).reason == "not a picture this assistant can read (corrupt or unknown image format)"
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("L", (800, 600), 255).save(blank)
    assert load_file(blank).reason == "no text found in the picture (OCR)"


def test_ocr_words_go_through_the_pdf_reading_order():
    """Two columns of OCR'd lines (as Tesseract may number them, row by row) read column by column."""
    words, line = [], 0
    for row in range(3):
        for col, text in enumerate((f"left{row} words here.", f"right{row} words here.")):
            x = 100 + col * 1300
            for k, word in enumerate(text.split()):
                words.append(ocr.OcrWord(word, x + k * 250, 300 + row * 60, x + k * 250 + 200, 340 + row * 60, line))
            line += 1
    page = ocr.OcrPage(tuple(words), 2480, 3508, 300)
    text = PdfLayout(boxes=True).run([ocr.page_glyphs(1, page)]).text
    assert text.index("left2") < text.index("right0")
    left = "left0 words here. left1 words here. left2 words here."
    assert " ".join(text.split()) == left + " right0 words here. right1 words here. right2 words here."


def test_ocr_settings_are_checked():
    with pytest.raises(InputError, match="ASSISTANT_OCR must be one of auto, off, always"):
        Settings(ocr="sometimes")
    options = ocr.OcrOptions.from_settings(Settings(ocr="always", ocr_max_pages=3))
    assert (options.mode, options.max_pages, options.language) == ("always", 3, "eng")


def test_an_indexed_scan_is_cited_with_its_page_and_as_ocr(tmp_path):
    from assistant import Assistant

    folder = tmp_path / "docs"
    folder.mkdir()
    image_only_pdf(folder / "bakery.pdf", [FIRST, SECOND])
    settings = Settings.from_env(index_dir=tmp_path / "index", progress=False, chunk_tokens=20, chunk_overlap_tokens=0)
    assistant = Assistant(settings=settings)  # passages of a sentence or two: one page each
    report = assistant.index([folder])
    assert (report.added, report.ocr_pages, report.skipped) == (1, 2, [])
    answer = assistant.answer("How many kinds of apples grow in the orchard behind the mill?")
    assert not answer.abstained
    cited = [c for c in answer.citations if "seventeen" in c.text]
    assert cited and all(c.page == 2 and c.ocr for c in cited)
    assert "(OCR)" in str(answer)


def test_a_quote_on_a_scanned_page_is_marked_on_the_rendered_page(tmp_path):
    """The viewer finds a quote on a page without a text layer among the page's OCR words."""
    from assistant.ingest.formats.pdf.picture import render_page

    pdf = image_only_pdf(tmp_path / "bakery.pdf", [FIRST, SECOND])
    shown = render_page(pdf, 2, quote=SECOND[0], answer="seventeen")
    assert shown.quote and shown.answer
    top = min(b.y0 for b in shown.quote)
    assert top < shown.height / 2  # the first line of the page, not the second
    assert not render_page(pdf, 2, quote="The museum opens its winter exhibition").quote
