"""One registry of file formats: one module per format family, each `load(name, data, max_chars)`.

A loader gets the source name to record, the file's bytes and the most text to extract, and returns a
`Document` or a `Skipped` with the reason: it never raises for a bad file. Heavy libraries are
imported on first use, so the registry itself costs nothing to import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING

from assistant.schema import Document, Skipped

if TYPE_CHECKING:
    from assistant.ingest.formats.ocr import OcrOptions

Loader = Callable[[str, bytes, int], Document | Skipped]


@dataclass(frozen=True)
class Format:
    """A file format: the suffixes it is known by and where its loader lives.

    Args:
        suffixes: Lower-case file suffixes, in the order the page and the README show them.
        module: The module (under `assistant.ingest.formats`) holding the loader.
        function: The loader's name in that module.
        container: A zip container, checked for zip bombs before parsing.
        verbatim: The text is the file itself (not extracted), so "too much text" is not a bomb.
        pictures: It may hold pictures of text; its loader takes the OCR options (`ocr=`).
    """

    suffixes: tuple[str, ...]
    module: str
    function: str = "load"
    container: bool = False
    verbatim: bool = False
    pictures: bool = False

    def load(self, name: str, data: bytes, max_chars: int, ocr: OcrOptions | None = None) -> Document | Skipped:
        """Run this format's loader (importing its module on first use)."""
        loader: Loader = getattr(import_module(f"{__name__}.{self.module}"), self.function)
        if self.pictures:
            return loader(name, data, max_chars, ocr)
        return loader(name, data, max_chars)


FORMATS: tuple[Format, ...] = (
    Format((".txt", ".md", ".markdown"), "text", verbatim=True),
    Format((".html", ".htm"), "html", verbatim=True),
    Format((".pdf",), "pdf", pictures=True),
    Format((".docx",), "office", "load_docx", container=True),
    Format((".pptx",), "slides", container=True),
    Format((".xlsx",), "sheets", "load_xlsx", container=True),
    Format((".csv",), "sheets", "load_csv"),
    Format((".epub",), "ebook", container=True),
    Format((".eml",), "mail"),
    Format((".odt", ".ods", ".odp"), "opendocument", container=True),
    Format((".rtf",), "legacy", "load_rtf"),
    Format((".xls",), "legacy", "load_xls"),
    Format((".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"), "images", pictures=True),  # read by OCR
)
BY_SUFFIX: dict[str, Format] = {suffix: f for f in FORMATS for suffix in f.suffixes}
SUFFIXES: tuple[str, ...] = tuple(BY_SUFFIX)


def format_of(suffix: str) -> Format | None:
    """The format a (lower-case) suffix names, or None if it cannot be indexed."""
    return BY_SUFFIX.get(suffix)


def parse(name: str, suffix: str, data: bytes, max_chars: int, ocr: OcrOptions | None = None) -> Document | Skipped:
    """A file's bytes to a `Document` by the loader of its type; a zip container is checked for bombs
    first (the bounded parse worker runs this)."""
    from assistant.ingest.limits import check_zip

    fmt = format_of(suffix)
    if fmt is None:  # the walk refuses these; kept for a caller that skips it
        return Skipped(name, f"unsupported file type '{suffix}'")
    if fmt.container and (problem := check_zip(data)) is not None:
        return Skipped(name, problem)
    return fmt.load(name, data, max_chars, ocr)
