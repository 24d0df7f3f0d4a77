"""OpenDocument (.odt .ods .odp), .rtf and legacy .xls: text, pages, limits, and hostile files.

Every file is built here: odfpy writes the OpenDocument files, xlwt the .xls, RTF is written by hand.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from assistant.ingest.loading import SUPPORTED_SUFFIXES, load_file
from assistant.schema import Document, Skipped


def _save(document) -> bytes:
    buffer = io.BytesIO()
    document.write(buffer)
    return buffer.getvalue()


def odt(paragraphs: list[str], table: list[list[str]] = ()) -> bytes:
    from odf.opendocument import OpenDocumentText
    from odf.table import Table, TableCell, TableColumn, TableRow
    from odf.text import H, P

    doc = OpenDocumentText()
    doc.text.addElement(H(outlinelevel=1, text="Ferry timetable"))
    for text in paragraphs:
        doc.text.addElement(P(text=text))
    if table:
        grid = Table(name="Times")
        grid.addElement(TableColumn(numbercolumnsrepeated=len(table[0])))
        for row in table:
            tr = TableRow()
            for value in row:
                cell = TableCell()
                cell.addElement(P(text=value))
                tr.addElement(cell)
            grid.addElement(tr)
        doc.text.addElement(grid)
    return _save(doc)


def ods(rows: list[list[str]], repeat_last: int = 1) -> bytes:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    doc = OpenDocumentSpreadsheet()
    sheet = Table(name="Ferries")
    for i, row in enumerate(rows):
        repeated = repeat_last if i == len(rows) - 1 else 1
        tr = TableRow(numberrowsrepeated=repeated) if repeated > 1 else TableRow()
        for value in row:
            cell = TableCell(valuetype="string")
            cell.addElement(P(text=value))
            tr.addElement(cell)
        sheet.addElement(tr)
    doc.spreadsheet.addElement(sheet)
    return _save(doc)


def odp(slides: list[tuple[str, str]]) -> bytes:
    from odf.draw import Frame, Page, TextBox
    from odf.opendocument import OpenDocumentPresentation
    from odf.presentation import Notes
    from odf.style import MasterPage, PageLayout
    from odf.text import P

    doc = OpenDocumentPresentation()
    layout = PageLayout(name="layout")
    doc.automaticstyles.addElement(layout)
    master = MasterPage(name="master", pagelayoutname=layout)
    doc.masterstyles.addElement(master)
    for body, note in slides:
        page = Page(masterpagename=master)
        frame = Frame(width="20cm", height="3cm", x="1cm", y="1cm")
        box = TextBox()
        box.addElement(P(text=body))
        frame.addElement(box)
        page.addElement(frame)
        if note:
            notes = Notes()
            nframe = Frame(width="20cm", height="3cm", x="1cm", y="1cm")
            nbox = TextBox()
            nbox.addElement(P(text=note))
            nframe.addElement(nbox)
            notes.addElement(nframe)
            page.addElement(notes)
        doc.presentation.addElement(page)
    return _save(doc)


def xls(sheets: dict[str, list[list]]) -> bytes:
    import xlwt

    book = xlwt.Workbook()
    for name, rows in sheets.items():
        sheet = book.add_sheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if hasattr(value, "year"):
                    sheet.write(r, c, value, xlwt.easyxf(num_format_str="YYYY-MM-DD"))
                else:
                    sheet.write(r, c, value)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


RTF = (
    rb"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0 Times New Roman;}}"
    rb"{\*\generator Hand;}\f0\fs24 The caf\'e9 in Z\'fcrich serves cr\'e8me br\'fbl\'e9e every Thursday.\par"
    rb"\par Its owner, Ren\u233?e, bakes \b forty\b0  loaves a day.\par}"
)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_the_new_types_are_in_the_one_list():
    for suffix in (".odt", ".ods", ".odp", ".rtf", ".xls", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"):
        assert suffix in SUPPORTED_SUFFIXES


def test_odt_paragraphs_and_table_rows(tmp_path):
    path = _write(
        tmp_path / "ferry.odt",
        odt(["The ferry to Hirtshals leaves at dawn.", "Tickets are sold on board."], [["Port", "Departs"],
            ["Hirtshals", "07:15"]]),
    )  # fmt: skip
    doc = load_file(path)
    assert isinstance(doc, Document), doc
    assert doc.text == (
        "Ferry timetable\n\nThe ferry to Hirtshals leaves at dawn.\n\nTickets are sold on board.\n\n"
        "Port | Departs\n\nHirtshals | 07:15"
    )


def test_ods_rows_with_the_header_repeated(tmp_path):
    path = _write(tmp_path / "ferries.ods", ods([["Port", "Departs"], ["Hirtshals", "07:15"], ["Kiel", "09:30"]]))
    doc = load_file(path)
    assert isinstance(doc, Document), doc
    assert doc.text == "Sheet: Ferries\nPort | Departs\nPort: Hirtshals | Departs: 07:15\nPort: Kiel | Departs: 09:30"


def test_odp_slides_are_pages_with_their_notes(tmp_path):
    path = _write(tmp_path / "talk.odp", odp([("Harbour opening hours", "Say it opens at six."), ("", ""),
                                             ("Ticket prices rose in May", "")]))  # fmt: skip
    doc = load_file(path)
    assert isinstance(doc, Document), doc
    assert doc.text == "Harbour opening hours\n\nNotes: Say it opens at six.\n\nTicket prices rose in May"
    assert doc.page_at(doc.text.index("Notes")) == 1
    assert doc.page_at(doc.text.index("Ticket")) == 3


def test_rtf_text_with_escapes_and_paragraphs(tmp_path):
    doc = load_file(_write(tmp_path / "cafe.rtf", RTF))
    assert isinstance(doc, Document), doc
    assert doc.text == (
        "The café in Zürich serves crème brûlée every Thursday.\n\nIts owner, Renée, bakes forty loaves a day."
    )


def test_xls_sheets_with_dates_and_numbers(tmp_path):
    from datetime import date

    path = _write(
        tmp_path / "crossings.xls",
        xls({"Crossings": [["Port", "Day", "Cars"], ["Hirtshals", date(2024, 5, 17), 120.0]], "Empty": []}),
    )
    doc = load_file(path)
    assert isinstance(doc, Document), doc
    assert doc.text == "Sheet: Crossings\nPort | Day | Cars\nPort: Hirtshals | Day: 2024-05-17 | Cars: 120"


# -- hostile files: each is skipped with a reason, or read within its bounds ----------------------


def _odt_with_content(content: bytes, *, compress: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text", compress_type=zipfile.ZIP_STORED)
        z.writestr(
            "META-INF/manifest.xml",
            '<?xml version="1.0"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:'
            'manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/'
            'vnd.oasis.opendocument.text"/></manifest:manifest>',
        )
        z.writestr("content.xml", content, compress_type=compress)
    return buffer.getvalue()


LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE office:document-content [
<!ENTITY a "haha haha haha haha haha haha haha haha haha haha">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
<!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
<!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">
]>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>
<text:p>&h;</text:p></office:text></office:body></office:document-content>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE office:document-content [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>
<text:p>Before &secret; after</text:p></office:text></office:body></office:document-content>"""


def _deep_rtf(depth: int) -> bytes:
    return b"{\\rtf1\\ansi " + b"{" * depth + b"deep text" + b"}" * depth + b"}"


def test_odt_billion_laughs_is_skipped(tmp_path):
    result = load_file(_write(tmp_path / "laughs.odt", _odt_with_content(LAUGHS)))
    assert result == Skipped(result.path, "not a valid OpenDocument file")


def test_odt_external_entity_is_not_read(tmp_path):
    result = load_file(_write(tmp_path / "xxe.odt", _odt_with_content(EXTERNAL)))
    assert "root:" not in getattr(result, "text", "")


def test_odt_zip_bomb_is_refused_from_the_zip_directory(tmp_path):
    content = b"<a>" + b" " * (40 * 1024 * 1024) + b"</a>"
    result = load_file(_write(tmp_path / "bomb.odt", _odt_with_content(content)))
    assert isinstance(result, Skipped)
    assert "possible decompression bomb" in result.reason


def test_ods_with_a_million_repeated_rows_is_read_once_per_row_that_has_text(tmp_path):
    path = _write(tmp_path / "repeat.ods", ods([["Port", "Departs"], ["Kiel", "09:30"]], repeat_last=1_048_575))
    assert path.stat().st_size < 10_000
    doc = load_file(path)
    assert isinstance(doc, Document), doc
    assert doc.text.count("Port: Kiel") == 1000  # a repeated row with text is written at most 1,000 times
    empty = _write(tmp_path / "empty-repeat.ods", ods([["Port", "Departs"], ["", ""]], repeat_last=1_048_575))
    assert load_file(empty).text == "Sheet: Ferries\nPort | Departs"


def test_text_limit_holds_for_the_new_formats(tmp_path):
    long = "A sentence about the harbour that repeats many times over. " * 200
    cases = {
        "long.odt": odt([long]),
        "long.ods": ods([["Note"], *[[long[:500]] for _ in range(30)]]),
        "long.odp": odp([(long, "")]),
        "long.rtf": b"{\\rtf1\\ansi " + long.encode() + b"}",
        "long.xls": xls({"Notes": [["Note"], *[[long[:500]] for _ in range(30)]]}),
    }
    for name, data in cases.items():
        result = load_file(_write(tmp_path / name, data), max_chars=2000)
        if isinstance(result, Document):  # sheets are read up to the limit, with a warning
            assert len(result.text) <= 2000 and result.warnings, name
        else:
            assert "characters" in result.reason, (name, result)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("fake.odt", b"This is not a zip at all", "not a valid OpenDocument file"),
        ("fake.ods", b"PK\x03\x04 broken zip", "not a valid OpenDocument file"),
        ("fake.rtf", b"Plain text named .rtf", "not an RTF file (it does not start with {\\rtf)"),
        ("fake.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "not a valid .xls file"),
        ("text.xls", b"Port,Departs\nKiel,09:30\n", "not a valid .xls file"),
    ],
)
def test_a_file_that_is_not_what_its_name_says_is_skipped(tmp_path, name, data, reason):
    assert load_file(_write(tmp_path / name, data)).reason == reason


def test_an_xlsx_named_xls_says_so(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["Port", "Departs"])
    path = tmp_path / "renamed.xls"
    book.save(path)
    assert load_file(path).reason == "an .xlsx file named .xls; rename it to .xlsx to index it"


def test_an_odt_that_is_really_a_spreadsheet_is_read_as_one(tmp_path):
    doc = load_file(_write(tmp_path / "sheet.odt", ods([["Port"], ["Kiel"]])))
    assert doc.text == "Sheet: Ferries\nPort\nPort: Kiel"


def test_deeply_nested_rtf_is_read_or_skipped_with_a_reason(tmp_path):
    result = load_file(_write(tmp_path / "deep.rtf", _deep_rtf(100_000)))
    assert isinstance(result, Document | Skipped)
    if isinstance(result, Document):
        assert result.text == "deep text"


def test_the_new_formats_are_indexed_and_answered(tmp_path):
    from assistant import Assistant
    from assistant.settings import Settings

    folder = tmp_path / "docs"
    folder.mkdir()
    _write(folder / "cafe.rtf", RTF)
    _write(folder / "ferry.odt", odt(["The ferry to Hirtshals leaves at dawn from pier nine."]))
    _write(folder / "lighthouse.xls", xls({"Keepers": [["Keeper", "Island"], ["Ingrid Dahl", "Utvær"]]}))
    assistant = Assistant(settings=Settings.from_env(index_dir=tmp_path / "index", progress=False))
    report = assistant.index([folder])
    assert (report.added, report.skipped) == (3, [])
    answer = assistant.answer("Which pier does the ferry to Hirtshals leave from?")
    assert not answer.abstained
    assert answer.citations[0].source.endswith("ferry.odt")
    assert "nine" in answer.citations[0].quote
