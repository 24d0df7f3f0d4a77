"""OpenDocument (.odt text, .ods spreadsheet, .odp presentation) through odfpy (Apache-2.0 / GPL / LGPL).

An OpenDocument file is a zip (checked for bombs before this runs) whose `content.xml` odfpy parses
with expat, which refuses entity expansion past its amplification limit (a "billion laughs" file).
- .odt: headings, paragraphs, list items and tables (one line per row, cells joined by " | ");
- .ods: each sheet's rows in row groups with the header repeated, as .xlsx (`sheets.SheetText`);
  a run of repeated rows or cells (`number-rows-repeated="1048576"`) is read once;
- .odp: each slide's text then its speaker notes (`Notes: …`); the slide number is the page.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from assistant.ingest.formats.sheets import Row, SheetText
from assistant.schema import Document, PageSpan, Skipped

_KINDS = {
    "application/vnd.oasis.opendocument.text": ".odt",
    "application/vnd.oasis.opendocument.spreadsheet": ".ods",
    "application/vnd.oasis.opendocument.presentation": ".odp",
}
_MAX_REPEAT = 1000  # a repeated row or cell with text is written at most this often (empty ones never)


def load(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    """Text, sheets or slides of an OpenDocument file, by the type it declares (not its name)."""
    try:
        from odf.opendocument import load as odf_load

        document = odf_load(io.BytesIO(data))
    except Exception:  # zip, xml (expat's entity limits included), key errors alike
        return Skipped(name, "not a valid OpenDocument file")
    kind = _KINDS.get(document.mimetype)
    try:
        if kind == ".ods":
            return _spreadsheet(name, document, max_chars)
        if kind == ".odp":
            return _presentation(name, document, max_chars)
        if kind == ".odt":
            return _text(name, document, max_chars)
    except _TooMuch:
        return Skipped(name, f"expands to more than {max_chars:,} characters (possible decompression bomb)")
    except Exception:  # a body odfpy could not parse (a DTD, broken XML) is missing, or too deep to walk
        return Skipped(name, "not a valid OpenDocument file")
    return Skipped(name, f"not an OpenDocument text, spreadsheet or presentation ({document.mimetype or 'no type'})")


class _TooMuch(Exception):
    pass


def _local(node) -> str:
    return node.qname[1] if getattr(node, "qname", None) else ""


def _plain(node) -> str:
    """The text of a node (spaces, tabs and line breaks as odfpy's teletype writes them), collapsed."""
    from odf import teletype

    return " ".join(teletype.extractText(node).split())


def _blocks(node, budget: list[int]) -> Iterator[str]:
    """Headings, paragraphs and table rows under `node`, in document order."""
    for child in node.childNodes:
        kind = _local(child)
        if kind in ("h", "p"):
            text = _plain(child)
        elif kind == "table-row":
            text = " | ".join(t for cell in child.childNodes if (t := _plain(cell)))
        elif kind in ("tracked-changes", "notes", "annotation", "sequence-decls"):
            continue
        else:
            yield from _blocks(child, budget)
            continue
        if text:
            budget[0] -= len(text) + 2
            if budget[0] < 0:
                raise _TooMuch
            yield text


def _text(name: str, document, max_chars: int) -> Document | Skipped:
    blocks = list(_blocks(document.text, [max_chars]))
    text = "\n\n".join(blocks)
    return Document(name, text) if text else Skipped(name, "no text in document")


def _spreadsheet(name: str, document, max_chars: int) -> Document | Skipped:
    from odf.table import Table

    out = SheetText(max_chars)
    for sheet in document.spreadsheet.getElementsByType(Table):
        title = str(sheet.getAttribute("name") or "")
        if out.full:
            out.warnings.append(f"sheet {title!r} and later ones were not read (text limit reached)")
            break
        out.add_sheet(title, _rows(sheet))
    return out.document(name)


def _rows(sheet) -> Iterator[Row]:
    """A sheet's rows (column -> text of the non-empty cells); repeats are written out only while they hold text."""
    for row in _descendants(sheet, "table-row"):
        cells: list[str] = []
        for cell in row.childNodes:
            if _local(cell) not in ("table-cell", "covered-table-cell"):
                continue
            text = _plain(cell)
            repeat = _repeat(cell, "numbercolumnsrepeated")
            cells += [text] * (min(repeat, _MAX_REPEAT) if text else (1 if repeat == 1 else 0))
        while cells and not cells[-1]:
            cells.pop()
        repeat = _repeat(row, "numberrowsrepeated")
        row_cells = {column: text for column, text in enumerate(cells) if text}
        for _ in range(min(repeat, _MAX_REPEAT) if cells else 1):
            yield row_cells


def _descendants(node, kind: str) -> Iterator:
    for child in node.childNodes:
        if _local(child) == kind:
            yield child
        else:
            yield from _descendants(child, kind)


def _repeat(node, attribute: str) -> int:
    try:
        return max(int(node.getAttribute(attribute) or 1), 1)
    except (ValueError, TypeError):
        return 1


def _presentation(name: str, document, max_chars: int) -> Document | Skipped:
    from odf.draw import Page

    parts: list[str] = []
    pages: list[PageSpan] = []
    at = 0
    for number, slide in enumerate(document.presentation.getElementsByType(Page), 1):
        notes = [n for n in slide.childNodes if _local(n) == "notes"]
        body = [n for n in slide.childNodes if _local(n) != "notes"]
        budget = [max_chars - at]
        blocks = [t for node in body for t in _blocks(_Holder(node), budget)]
        note = " ".join(t for node in notes for t in _blocks(node, budget))
        if note:
            blocks.append(f"Notes: {note}")
        text = "\n\n".join(blocks)
        if not text:
            continue
        if parts:
            at += 2
        pages.append(PageSpan(number, at, at + len(text)))
        parts.append(text)
        at += len(text)
        if at > max_chars:
            raise _TooMuch
    text = "\n\n".join(parts)
    return Document(name, text, tuple(pages)) if text else Skipped(name, "no text in presentation")


class _Holder:
    """One node seen as the only child of a parent, so `_blocks` reads the node itself too."""

    def __init__(self, node):
        self.childNodes = [node]
