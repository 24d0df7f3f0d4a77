"""Formats still in use from before XML: .rtf through striprtf (BSD-3) and .xls through xlrd (BSD).

- .rtf: the text, its paragraphs separated by blank lines; `\\'xx` escapes decoded by the file's
  declared code page (`\\ansicpg1252`), `\\u` escapes as Unicode. Embedded pictures and objects
  are skipped by the library (they are `\\*` destinations or `\\bin` data).
- .xls: each sheet's cell values in row groups with the header repeated, as .xlsx (`sheets.py`);
  dates are read as dates. xlrd reads only the cells the file holds; a file saved with a password
  is reported as such.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, time

from assistant.ingest.formats.sheets import Row, SheetText
from assistant.schema import Document, Skipped

_CODEPAGE = re.compile(rb"\\ansicpg(\d{3,5})")
_BLANKS = re.compile(r"\n\s*\n\s*")


def load_rtf(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    """The text of an RTF file, paragraph by paragraph."""
    if not data.lstrip().startswith(b"{\\rtf"):
        return Skipped(name, "not an RTF file (it does not start with {\\rtf)")
    from striprtf.striprtf import rtf_to_text

    match = _CODEPAGE.search(data[:4096])
    encoding = f"cp{match.group(1).decode()}" if match else "cp1252"
    try:
        "".encode(encoding)
    except LookupError:
        encoding = "cp1252"
    try:
        text = rtf_to_text(data.decode("latin-1"), encoding=encoding, errors="replace")
    except Exception:
        return Skipped(name, "not a valid RTF file")
    lines = [" ".join(line.split()) for line in text.replace("\r", "").split("\n")]
    text = _BLANKS.sub("\n\n", "\n".join(lines)).strip()
    text = "\n\n".join(p for p in text.split("\n\n") if p.strip())
    if len(text) > max_chars:
        return Skipped(name, f"expands to more than {max_chars:,} characters (possible decompression bomb)")
    return Document(name, text) if text else Skipped(name, "no text in document")


def load_xls(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    """Every sheet's values (not formulas) of a legacy Excel workbook."""
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
    except xlrd.biffh.XLRDError as exc:
        if "encrypt" in str(exc).lower():
            return Skipped(name, "password-protected (encrypted); save it without a password to index it")
        if "xlsx" in str(exc).lower():
            return Skipped(name, "an .xlsx file named .xls; rename it to .xlsx to index it")
        return Skipped(name, "not a valid .xls file")
    except Exception:
        return Skipped(name, "not a valid .xls file")
    out = SheetText(max_chars)
    try:
        for index in range(book.nsheets):
            sheet = book.sheet_by_index(index)
            if out.full:
                out.warnings.append(f"sheet {sheet.name!r} and later ones were not read (text limit reached)")
                break
            out.add_sheet(sheet.name, _rows(sheet, book.datemode))
            book.unload_sheet(index)
    except Exception:
        return Skipped(name, "not a valid .xls file (a sheet cannot be read)")
    finally:
        book.release_resources()
    return out.document(name)


def _rows(sheet, datemode: int) -> Iterator[Row]:
    """Each row's non-empty cells (column -> text), as `SheetText` takes them."""
    for r in range(sheet.nrows):
        cells = (_cell(sheet.cell(r, c), datemode) for c in range(sheet.row_len(r)))
        yield {column: text for column, text in enumerate(cells) if text}


def _cell(cell, datemode: int) -> str:
    import xlrd

    if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR):
        return ""
    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            value = xlrd.xldate_as_datetime(cell.value, datemode)
        except Exception:
            return str(cell.value)
        return value.date().isoformat() if value.time() == time() else datetime.isoformat(value, sep=" ")[:16]
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return "TRUE" if cell.value else "FALSE"
    value = cell.value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).split())
