"""Pictures of text (.png .jpg .jpeg .tif .tiff .webp), read by OCR; each frame of a TIFF is a page.

A picture is judged from its header before it is decoded: one that declares more than
`ocr.MAX_PIXELS` pixels is refused (a 20 KB PNG can declare 100,000 × 100,000 pixels, 10 GB
decoded), and so is one Pillow cannot identify. Pages past `ASSISTANT_OCR_MAX_PAGES` are named in
a warning, not read.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator

from assistant.ingest.formats import ocr
from assistant.schema import Document, Skipped

SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
_DEFAULT_DPI = 300.0  # a picture that does not say its resolution is taken as a 300 dpi scan


def load(name: str, data: bytes, max_chars: int, options: ocr.OcrOptions | None = None) -> Document | Skipped:
    options = options or ocr.OcrOptions.from_settings()
    if options.mode == "off":
        return Skipped(name, "a picture, and OCR is off (ASSISTANT_OCR=off)")
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            frames = getattr(image, "n_frames", 1)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return Skipped(name, _bomb_reason(data))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return Skipped(name, "not a picture this assistant can read (corrupt or unknown image format)")
    if width * height > ocr.MAX_PIXELS:
        return Skipped(name, _too_big(width, height))
    dpi = _dpi(image)
    read = min(frames, options.max_pages)
    try:
        run = ocr.read_pages(_frames(image, read), options, total=read, dpi=dpi, progress=ocr.console_progress(name))
    except ocr.OcrUnavailable as exc:
        return Skipped(name, f"a picture, and {exc}")
    notes = list(run.warnings)
    if frames > read:
        rest = f"page {read + 1}" if frames == read + 1 else f"pages {read + 1}–{frames}"
        notes.append(f"OCR stopped at {options.max_pages} pages (ASSISTANT_OCR_MAX_PAGES): {rest} not read")
    pages = [run.pages[n] for n in sorted(run.pages)]
    from assistant.ingest.formats.pdf.layout import PdfLayout, english_words

    result = PdfLayout(english_words(), boxes=True).run(pages)
    if not result.pages:
        return Skipped(name, "no text found in the picture (OCR)" if not notes else f"no text read: {notes[0]}")
    if len(result.text) > max_chars:
        return Skipped(name, f"expands to more than {max_chars:,} characters")
    ocr_pages = tuple(p.number for p in pages if p.glyphs)
    return Document(name, result.text, result.pages, tuple(notes), ocr_pages, result.boxes)


def _frames(image, count: int) -> Iterator[ocr.Picture]:
    """(page number, how to decode it), one frame at a time; each frame's size is checked first."""
    for index in range(count):

        def decode(index=index):
            image.seek(index)
            if image.width * image.height > ocr.MAX_PIXELS:
                raise ValueError(_too_big(image.width, image.height))
            return image.convert("L")

        yield ocr.Picture(index + 1, decode)


def _dpi(image) -> float:
    dpi = image.info.get("dpi")
    try:
        value = float(dpi[0]) if isinstance(dpi, tuple) else float(dpi)
    except (TypeError, ValueError, IndexError):
        return _DEFAULT_DPI
    return value if 50 <= value <= 1200 else _DEFAULT_DPI


def _too_big(width: int, height: int) -> str:
    return (
        f"picture of {width:,} × {height:,} pixels is over the {ocr.MAX_PIXELS / 1e6:g} million pixels OCR reads "
        "(possible decompression bomb)"
    )


def _bomb_reason(data: bytes) -> str:
    """Pillow refused the picture from its header; say how large it claims to be when that is known."""
    import struct

    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return _too_big(width, height)
    return f"picture declares more than {ocr.MAX_PIXELS / 1e6:g} million pixels (possible decompression bomb)"
