"""Plain text (.txt, .md): the decoded file unchanged, so passage offsets point into the real file."""

from __future__ import annotations

import codecs

from assistant.ingest.headings import markdown_headings, sections
from assistant.schema import Document, Skipped

BINARY = "binary file (not text)"
EMPTY = "empty file"

# Checked in this order: the UTF-32 LE BOM starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Control characters that do not occur in real text (C0 minus whitespace, DEL, C1).
_CONTROL = {c: None for c in [*range(0x09), *range(0x0E, 0x20), *range(0x7F, 0xA0)]}
_MAX_CONTROL_RATIO = 0.05


def decode(data: bytes, *, html: bool = False) -> str | None:
    """Decode file bytes as text, or return None if they are not text.

    A BOM decides the encoding; otherwise UTF-8, then (for html) the declared charset, then
    cp1252/Latin-1 — accepted only if the result has few control characters.
    """
    text = None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                pass
            break
    if text is None:
        if b"\x00" in data:
            return None
        text = _try_decode(data, "utf-8")
    if text is None and html:
        from bs4.dammit import EncodingDetector

        declared = EncodingDetector.find_declared_encoding(data, is_html=True)
        text = _try_decode(data, declared) if declared else None
    if text is None:
        text = _try_decode(data, "cp1252") or data.decode("latin-1")
    control = len(text) - len(text.translate(_CONTROL))
    return None if control > _MAX_CONTROL_RATIO * len(text) else text


def _try_decode(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def load(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    """A text file as it is (decoded); binary data is skipped. Markdown keeps its heading paths."""
    text = decode(data)
    if text is None:
        return Skipped(name, BINARY)
    if not text.strip():
        return Skipped(name, EMPTY)
    markdown = not name.lower().endswith(".txt")
    return Document(name, text, sections=sections(markdown_headings(text), len(text)) if markdown else ())
