"""Spreadsheets: .xlsx through openpyxl (MIT) and .csv through the standard library.

A sheet becomes row groups of about one passage each: the sheet's name, its header row (repeated in
every group, so a passage read alone still says what its columns are), then the rows, each cell as
`column: value`, joined by " | " (a row alone, "Hirtshals | 07:15", answers nothing). Groups are
separated by a blank line, where the chunker prefers to cut. A sheet larger than the text limit
is read up to it and the document says so in a warning.

Rows are sparse (column number -> text): only the cells a file holds are read. openpyxl's
read-only rows are padded to the sheet's declared dimension, so a 1.5 KB file declaring
A1:XFD1048576 with two cells made a million rows of 16,384 empty cells (22 minutes a sheet).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time

from assistant.ingest.formats.office import not_ooxml
from assistant.ingest.formats.text import decode
from assistant.ingest.limits import step
from assistant.schema import Document, Skipped

GROUP_CHARS = 600  # about one passage (~150 word pieces) of rows per group
_SNIFF_BYTES = 16 * 1024
MAX_COLUMNS = 16_384  # Excel's own limit: a CSV line with more fields is not a table anyone made

Row = dict[int, str]  # column number -> the cell's text, non-empty cells only


@dataclass
class SheetText:
    """Text made of sheets' row groups, within a budget of characters and of rows and cells read.

    A row costs one plus its cells, so rows x columns read is bounded by the budget too.
    """

    budget: int
    parts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    used: int = 0  # characters of text, separators included
    scanned: int = 0  # rows and cells read, empty or not: a million empty rows cost time too

    @property
    def full(self) -> bool:
        return self.used >= self.budget or self.scanned >= self.budget

    def add_sheet(self, sheet: str, rows: Iterable[Row]) -> None:
        """Add one sheet's rows; stops at the budget with a warning naming the sheet."""
        header: str | None = None
        names: Row = {}
        group: list[str] = []
        size = read = 0
        truncated = False
        for cells in rows:
            step()
            self.scanned += 1 + len(cells)
            if self.scanned > self.budget:
                truncated = True
                break
            read += 1
            if header is None:
                if cells:
                    names = cells
                    header = " | ".join(cells[c] for c in sorted(cells))
                continue
            line = _row(names, cells)
            if not line:
                continue
            cost = len(line) + 1
            if group and size + len(line) > GROUP_CHARS:
                self._flush(sheet, header, group)
                group, size = [], 0
            if not group:
                cost += self._overhead(sheet, header)
            if self.used + cost > self.budget:
                truncated, read = True, read - 1  # this row is not kept
                break
            group.append(line)
            size += len(line) + 1
            self.used += cost
        if group:
            self._flush(sheet, header or "", group)
        elif header and self.used + self._overhead(sheet, header) <= self.budget:  # a sheet of one row
            self.used += self._overhead(sheet, header)
            self._flush(sheet, header, [])
        if truncated:
            self.warnings.append(
                f"sheet {sheet!r}: only the first {read:,} rows were read (text limit {self.budget:,} characters, "
                "ASSISTANT_MAX_CHARS_PER_FILE)"
            )

    @staticmethod
    def _overhead(sheet: str, header: str) -> int:
        return len("Sheet: ") + len(sheet) + len(header) + 4  # two line breaks, and the blank line before

    def _flush(self, sheet: str, header: str, group: list[str]) -> None:
        self.parts.append("\n".join([f"Sheet: {sheet}", header, *group]))

    def document(self, name: str) -> Document | Skipped:
        text = "\n\n".join(self.parts)
        if not text.strip():
            return Skipped(name, "no text in spreadsheet")
        return Document(name, text, warnings=tuple(self.warnings))


def _row(names: Row, cells: Row) -> str:
    """A row as `column: value` pairs, so that a row read alone (by a person or a model) says what it holds."""
    pairs = [f"{names[c]}: {cells[c]}" if c in names else cells[c] for c in sorted(cells)]
    return " | ".join(pairs)


def load_xlsx(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    """Every sheet's rows (values, not formulas), in row groups with the header repeated.

    Args:
        name: The source to record.
        data: The file's bytes.
        max_chars: The most text to extract; a larger sheet is read up to it, with a warning.
    """
    if reason := not_ooxml(data, ".xlsx"):
        return Skipped(name, reason)
    import openpyxl

    out = SheetText(max_chars)
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # zip, xml, package and key errors alike
        return Skipped(name, "not a valid .xlsx file")
    try:
        for sheet in book.worksheets:
            if out.full:
                out.warnings.append(f"sheet {sheet.title!r} and later ones were not read (text limit reached)")
                break
            out.add_sheet(sheet.title, _sheet_rows(book, sheet))
    except Exception:
        return Skipped(name, "not a valid .xlsx file (a sheet cannot be read)")
    finally:
        book.close()
    return out.document(name)


def _sheet_rows(book, sheet) -> Iterator[Row]:
    """The rows a sheet's XML holds, with the cells it holds: never the padding to its declared size.

    openpyxl's own parser, as its read-only `iter_rows` runs it, without the padding step.
    """
    from openpyxl.worksheet._reader import WorkSheetParser

    with sheet._get_source() as source:
        parser = WorkSheetParser(
            source,
            sheet._shared_strings,
            data_only=True,
            epoch=book.epoch,
            date_formats=book._date_formats,
            timedelta_formats=book._timedelta_formats,
        )
        for _, cells in parser.parse():
            row = {}
            for cell in cells:
                if text := _cell(cell["value"]):
                    row[cell["column"]] = text
            yield row


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes") if value.time() != time() else value.date().isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).split())


def load_csv(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    """A CSV file's rows in row groups with the header repeated; the delimiter is sniffed (, ; tab |).

    Args:
        name: The source to record (its file name is the "sheet" name).
        data: The file's bytes.
        max_chars: The most text to extract; a larger file is read up to it, with a warning.
    """
    text = decode(data)
    if text is None:
        return Skipped(name, "binary file (not text)")
    try:
        dialect = csv.Sniffer().sniff(text[:_SNIFF_BYTES], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    out = SheetText(max_chars)
    sheet = name.rsplit("/", 1)[-1]
    if (widest := _widest_line(text, dialect.delimiter)) > MAX_COLUMNS:
        return Skipped(name, f"a line has {widest:,} fields (more than {MAX_COLUMNS:,} columns); not a table")
    try:
        out.add_sheet(sheet, _csv_rows(csv.reader(io.StringIO(text, newline=""), dialect)))
    except csv.Error as exc:
        return Skipped(name, f"not a valid CSV file ({exc})")
    return out.document(name)


def _widest_line(text: str, delimiter: str) -> int:
    """Most fields a line could hold (delimiters inside quotes count too), found without splitting it.

    The csv reader makes a list of a line's fields at once: an 8-million-field line took 898 MB.
    """
    widest = 0
    for line in io.StringIO(text, newline=""):
        widest = max(widest, line.count(delimiter) + 1)
    return widest


def _csv_rows(reader) -> Iterator[Row]:
    for row in reader:
        yield {i: cell for i, c in enumerate(row, 1) if (cell := " ".join(c.split()))}
