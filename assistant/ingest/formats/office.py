"""Word documents (.docx), and what a file that should be an Office Open XML zip is when it is not.

An OOXML file saved with a password is not a zip at all but an OLE compound file holding the
encrypted package (`EncryptionInfo`, `EncryptedPackage`); an old .xls/.ppt renamed is OLE too.
"""

from __future__ import annotations

import io

from assistant.ingest.headings import Heading, sections
from assistant.schema import Document, Skipped

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def not_ooxml(data: bytes, kind: str) -> str | None:
    """The reason an OLE file named as an OOXML `kind` (".xlsx", ".pptx") cannot be read; None if not OLE."""
    if not data.startswith(_OLE_MAGIC):
        return None
    import olefile

    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            encrypted = ole.exists("EncryptionInfo") or ole.exists("EncryptedPackage")
    except Exception:
        return f"not a valid {kind} file"
    if encrypted:
        return "password-protected (encrypted); save it without a password to index it"
    return f"an old binary Office file, not {kind}; save it as {kind} to index it"


def load_docx(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        blocks: list[str] = []
        headings: list[Heading] = []
        at = 0
        for item in document.iter_inner_content():  # paragraphs and tables in document order
            text = _table_text(item) if isinstance(item, Table) else item.text.strip()
            if text:
                if (level := _heading_level(item)) is not None:
                    headings.append(Heading(level, text, at))
                blocks.append(text)
                at += len(text) + 2
    except Exception:  # zip, xml, package and key errors alike
        return Skipped(name, "not a valid .docx file")
    text = "\n\n".join(blocks)
    if not text:
        return Skipped(name, "no text in document")
    return Document(name, text, sections=sections(headings, len(text)))


def _heading_level(paragraph) -> int | None:
    """1 for a "Title" or "Heading 1" paragraph, N for "Heading N"; None for other text."""
    style = getattr(getattr(paragraph, "style", None), "name", "") or ""
    if style == "Title":
        return 1
    if style.startswith("Heading ") and style[8:].strip().isdigit():
        return int(style[8:])
    return None


def _table_text(table) -> str:
    """One line per row, cells separated by " | " (merged cells counted once)."""
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            text = " ".join(cell.text.split())
            if text:
                cells.append(text)
        if cells:
            rows.append(" | ".join(cells))
    return "\n".join(rows)
