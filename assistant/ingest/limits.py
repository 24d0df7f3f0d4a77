"""Limits on what a small file may expand to, judged before it is parsed (decompression bombs).

A 200 KB .docx can hold 40 MB of XML, and a 13 KB PDF can make text extraction read the same
megabyte-sized page a thousand times. The file size limit says nothing about either, so zip
containers are judged from their central directory and PDFs from their decompressed page
content, both before the real parsing starts. The loader also caps the extracted text itself.
"""

from __future__ import annotations

import io
import logging
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from assistant.settings import MB

_PDF_PAGE_BYTES = 1024  # each page counts at least this much, so a million empty pages cost too


# -- pdf ---------------------------------------------------------------------------------------
def pdf_limits(max_stream_bytes: int):
    """pypdf's own limits, lowered for one call: no stream may decompress to more than this.

    Older pypdf versions have no configuration; their built-in limits then apply.
    """
    try:
        from pypdf import apply_configuration
    except ImportError:
        return nullcontext()
    return apply_configuration(
        zlib_maximum_output_length=max_stream_bytes,
        lzw_maximum_output_length=max_stream_bytes,
        run_length_maximum_output_length=max_stream_bytes,
        brotli_maximum_output_length=max_stream_bytes,
    )


def pdf_within(data: bytes, budget: int) -> bool:
    """Whether the page content a PDF makes text extraction read stays within `budget` bytes.

    Text extraction parses every page's decompressed content stream and the forms it draws,
    at about 0.5 MB/s; a 20 KB file whose pages share one stream of a few megabytes would
    keep it busy for hours. Real documents need 2-10 bytes of content per character of text,
    figures drawn as vectors far more (a 17-page paper: 4.3 MB). Each page counts what it
    draws (shared streams once per page, as extraction reads them) plus `_PDF_PAGE_BYTES`;
    the count stops as soon as it is over.
    Files pypdf cannot open count as within: the loader then says what is wrong with them.
    """
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError

    total = 0
    with _quiet(), pdf_limits(budget):
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                return True
            for page in reader.pages:
                total += _PDF_PAGE_BYTES + _page_content_bytes(page)
                if total > budget:
                    return False
        except LimitReachedError:
            return False
        except Exception:
            return True
    return True


def _page_content_bytes(page) -> int:
    """Decompressed bytes of a page's content stream and of the forms it draws (0 if unreadable)."""
    from pypdf.errors import LimitReachedError

    try:
        contents = page.get_contents()
        size = len(contents.get_data()) if contents is not None else 0
        resources = _resolved(page.get("/Resources"))
        for ref in _resolved(resources.get("/XObject")).values():
            form = ref.get_object()
            if form.get("/Subtype") == "/Form":
                size += len(form.get_data())
    except LimitReachedError:
        raise
    except Exception:  # a broken page: extraction will find no text in it either
        return 0
    return size


def _resolved(obj) -> dict:
    obj = obj.get_object() if obj is not None else None
    return obj if isinstance(obj, dict) else {}


# -- zip containers (docx) ---------------------------------------------------------------------
@dataclass(frozen=True)
class ZipLimits:
    """What a zip-based document may hold, judged from its central directory before parsing.

    The ratio and size figures are Apache POI's (ZipSecureFile): real documents compress
    text about 5-20 times; a bomb compresses repeated text hundreds of times.

    Args:
        max_members: Most files inside the container.
        max_total_bytes: Most bytes all members may expand to.
        max_ratio: Most a member may expand relative to its compressed size...
        ratio_after_bytes: ...once it is larger than this (small members compress poorly anyway).
    """

    max_members: int = 10_000
    max_total_bytes: int = 256 * MB
    max_ratio: float = 100.0
    ratio_after_bytes: int = 100 * 1024


def check_zip(data: bytes, limits: ZipLimits = ZipLimits()) -> str | None:
    """Why a zip container (docx, and later pptx, xlsx, epub) is unsafe to open; None if it is not.

    Reads the central directory only, so a bomb is refused before anything is decompressed.
    Python's zip reader never returns more than a member's declared size, so the declared
    sizes are the bound. A file that is not a zip is left to the format's loader to report.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None
    if len(members) > limits.max_members:
        return f"too many files inside ({len(members):,} > {limits.max_members:,}; possible zip bomb)"
    total = 0
    for m in members:
        total += m.file_size
        if total > limits.max_total_bytes:
            return (
                f"expands to more than {limits.max_total_bytes / MB:g} MB when unpacked (possible decompression bomb)"
            )
        ratio = m.file_size / max(m.compress_size, 1)
        if m.file_size > limits.ratio_after_bytes and ratio > limits.max_ratio:
            return (
                f"a part expands {ratio:,.0f} times ({m.compress_size / 1024:,.0f} KB to "
                f"{m.file_size / MB:,.1f} MB; possible decompression bomb)"
            )
    return None


@contextmanager
def _quiet() -> Iterator[None]:
    """pypdf logs and warns about every quirk of a file it is only measuring."""
    pypdf_logger = logging.getLogger("pypdf")
    level = pypdf_logger.level
    pypdf_logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pypdf_logger.setLevel(level)
