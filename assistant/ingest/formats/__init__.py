"""Loaders for slides, spreadsheets, e-books, mail, OpenDocument, RTF, .xls and pictures (OCR): one module
per format family.

Each loader is `load(name, data, max_chars) -> Document | Skipped`: `name` is the source to record,
`data` the file's bytes, `max_chars` the most text to extract. Like every loader it never raises
for a bad file; the reason goes into `Skipped`. The heavy libraries are imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable

from assistant.schema import Document, Skipped

Loader = Callable[[str, bytes, int], Document | Skipped]


def _slides(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    from assistant.ingest.formats.slides import load

    return load(name, data, max_chars)


def _xlsx(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    from assistant.ingest.formats.sheets import load_xlsx

    return load_xlsx(name, data, max_chars)


def _csv(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    from assistant.ingest.formats.sheets import load_csv

    return load_csv(name, data, max_chars)


def _epub(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    from assistant.ingest.formats.ebook import load

    return load(name, data, max_chars)


def _eml(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    from assistant.ingest.formats.mail import load

    return load(name, data, max_chars)


def _image(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    from assistant.ingest.formats.images import load

    return load(name, data, max_chars)


def _opendocument(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    from assistant.ingest.formats.opendocument import load

    return load(name, data, max_chars)


def _rtf(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    from assistant.ingest.formats.legacy import load_rtf

    return load_rtf(name, data, max_chars)


def _xls(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    from assistant.ingest.formats.legacy import load_xls

    return load_xls(name, data, max_chars)


LOADERS: dict[str, Loader] = {
    ".pptx": _slides, ".xlsx": _xlsx, ".csv": _csv, ".epub": _epub, ".eml": _eml,
    ".odt": _opendocument, ".ods": _opendocument, ".odp": _opendocument, ".rtf": _rtf, ".xls": _xls,
    ".png": _image, ".jpg": _image, ".jpeg": _image, ".tif": _image, ".tiff": _image, ".webp": _image,
}  # fmt: skip
SUFFIXES: frozenset[str] = frozenset(LOADERS)
# Zip containers, checked for zip bombs before parsing.
ZIP_SUFFIXES: frozenset[str] = frozenset({".pptx", ".xlsx", ".epub", ".odt", ".ods", ".odp"})
