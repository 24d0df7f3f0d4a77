"""Limits on what a small file may expand to, judged before it is parsed (decompression bombs).

A 200 KB .docx can hold 40 MB of XML, and a 13 KB PDF can make text extraction read the same
megabyte-sized page a thousand times. The file size limit says nothing about either, so zip
containers are judged from their central directory and PDFs from their decompressed page
content, both before the real parsing starts. The loader also caps the extracted text itself.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from assistant.settings import MB

_PDF_PAGE_BYTES = 1024  # each page counts at least this much, so a million empty pages cost too

_on_step: Callable[[], None] | None = None


# -- time --------------------------------------------------------------------------------------
def step() -> None:
    """Say that a parse moved on (a page, a sheet's rows, a chapter, a mail part).

    In the bounded worker (`worker.py`) this restarts the time limit of a step; elsewhere it does
    nothing. Loaders call it between units of work, so a long but honest file is not cut off.
    """
    if _on_step is not None:
        _on_step()


def on_step(callback: Callable[[], None] | None) -> None:
    """Have `step()` call this (the worker process sets it once, at its start)."""
    global _on_step
    _on_step = callback


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
    figures drawn as vectors far more (a 17-page paper: 4.3 MB). Each page counts its whole
    drawing tree as extraction runs it: its content, and every form each `Do` draws, forms
    drawn inside forms too, a form drawn 60 times counting 60 times (a 2 KB file of forms
    that draw forms 60 times, five deep, makes 778 million words), each draw at least
    `_PDF_DRAW_BYTES`, plus `_PDF_PAGE_BYTES` a page; the count stops as soon as it is over.
    A form that draws itself (directly or not) is over. Files pypdf cannot open count as
    within: the loader then says what is wrong with them.
    """
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError

    total = 0
    with _quiet(), pdf_limits(budget):
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                return True
            tree = _DrawingTree(budget)
            for page in reader.pages:
                step()
                total += _PDF_PAGE_BYTES + tree.page_bytes(page, budget - total)
                if total > budget:
                    return False
        except (LimitReachedError, _OverBudget):
            return False
        except Exception:
            return True
    return True


_PDF_DRAW_BYTES = 64  # each `Do` counts at least this much, so a million draws of an empty form cost too
_DO = re.compile(rb"/([^\s/\[\]()<>{}%]+)\s*Do(?![^\s/\[\]()<>{}%])")


class _OverBudget(Exception):
    """The drawing tree is larger than the budget (or draws itself)."""


class _DrawingTree:
    """What extraction reads to draw a page: its content and the forms it draws, with repeats.

    A form's cost (its content plus what it draws) is computed once and reused wherever it is
    drawn, so measuring is linear in the distinct streams even when drawing is exponential.
    """

    def __init__(self, budget: int):
        self.budget = budget
        self._costs: dict[tuple[int, int], int] = {}
        self._drawing: set[tuple[int, int]] = set()

    def page_bytes(self, page, left: int) -> int:
        """Bytes of a page's drawing tree (0 if the page is unreadable: extraction finds no text in it)."""
        from pypdf.errors import LimitReachedError

        try:
            contents = page.get_contents()
            content = contents.get_data() if contents is not None else b""
            return self._content_bytes(content, _resolved(page.get("/Resources")), left)
        except (LimitReachedError, _OverBudget):
            raise
        except Exception:
            return 0

    def _content_bytes(self, content: bytes, resources: dict, left: int) -> int:
        total = len(content)
        if total > left:
            raise _OverBudget
        xobjects = _resolved(resources.get("/XObject"))
        for name in _DO.findall(content):
            total += _PDF_DRAW_BYTES + self._form_bytes(xobjects.get("/" + _pdf_name(name)), resources, left - total)
            if total > left:
                raise _OverBudget
        return total

    def _form_bytes(self, ref, inherited: dict, left: int) -> int:
        form = ref.get_object() if ref is not None else None
        if not isinstance(form, dict) or form.get("/Subtype") != "/Form":
            return 0  # an image or a missing name: nothing more to read
        own = form.get("/Resources")
        resources = _resolved(own) if own is not None else inherited
        key = (id(form), id(resources))
        if key in self._costs:
            return self._costs[key]
        if key in self._drawing:  # a form that draws itself never ends
            raise _OverBudget
        self._drawing.add(key)
        try:
            cost = self._content_bytes(form.get_data(), resources, min(left, self.budget))
        finally:
            self._drawing.discard(key)
        self._costs[key] = cost
        return cost


def _pdf_name(raw: bytes) -> str:
    """A name as written in a content stream (`#20` escapes decoded) as pypdf spells dictionary keys."""
    name = re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), raw)
    return name.decode("utf-8", "replace")


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
