"""Builders of small files that cost a parser far more than their size (issue #26), made byte by byte.

Each one is a few kilobytes; what it would cost to read before the fix is in docs/security.md.
Read them only under a memory limit (the bounded loader, or `resource.setrlimit` in a subprocess).
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path


def pdf_objects(objects: list[bytes]) -> bytes:
    """A PDF of these object bodies (object 1 is the catalog), with a correct cross-reference table."""
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _stream(content: bytes, extra: bytes = b"") -> bytes:
    packed = zlib.compress(content, 9)
    return b"<< /Length %d /Filter /FlateDecode %s >>\nstream\n" % (len(packed), extra) + packed + b"\nendstream"


def nested_forms_pdf(levels: int = 5, draws: int = 60, word: bytes = b"word") -> bytes:
    """One page drawing a form that draws another form `draws` times, `levels` deep; the last shows one word.

    The page's own content and each form are a few hundred bytes, but text extraction runs the last
    form draws**levels times (60**5: 778 million words from a 2 KB file).
    """
    # objects: 1 catalog, 2 pages, 3 page, 4 page content, 5 font, 6.. forms (6 is the outermost)
    forms = []
    for level in range(levels):
        if level == levels - 1:
            content = b"BT /F1 12 Tf 72 720 Td (" + word + b") Tj ET"
            resources = b"/Resources << /Font << /F1 5 0 R >> >>"
        else:
            content = b"q /X Do Q\n" * draws
            resources = b"/Resources << /XObject << /X %d 0 R >> /Font << /F1 5 0 R >> >>" % (6 + level + 1)
        forms.append(_stream(content, b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] " + resources))
    return pdf_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /XObject << /X 6 0 R >> /Font << /F1 5 0 R >> >> >>",
        _stream(b"q /X Do Q\n" * draws),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        *forms,
    ])  # fmt: skip


def sparse_xlsx(path: Path, last_row: int = 1_048_576, last_column: str = "XFD") -> Path:
    """A workbook whose one sheet claims A1:XFD1048576 and holds two cells: A1 and A<last_row>.

    Read-only openpyxl pads to the claimed dimension: a million rows of 16,384 empty cells.
    """
    sheet = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<dimension ref="A1:{last_column}{last_row}"/><sheetData>'
        '<row r="1"><c r="A1" t="inlineStr"><is><t>Harbour</t></is></c></row>'
        f'<row r="{last_row}"><c r="A{last_row}" t="inlineStr"><is><t>Skagen</t></is></c></row>'
        "</sheetData></worksheet>"
    )
    return _workbook(path, sheet)


def wide_xlsx(path: Path, rows: int = 2000, column: str = "XFD") -> Path:
    """A sheet whose every row holds one cell in column A and one in the last column (16,384)."""
    body = "".join(
        f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>a{r}</t></is></c>'
        f'<c r="{column}{r}" t="inlineStr"><is><t>z{r}</t></is></c></row>'
        for r in range(1, rows + 1)
    )
    sheet = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetData>{body}</sheetData></worksheet>"
    )
    return _workbook(path, sheet)


def _workbook(path: Path, sheet_xml: str) -> Path:
    ns = "http://schemas.openxmlformats.org/"
    files = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?>'
        f'<Types xmlns="{ns}package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels": f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{ns}package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{ns}officeDocument/2006/relationships/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{ns}spreadsheetml/2006/main" '
        f'xmlns:r="{ns}officeDocument/2006/relationships"><sheets>'
        '<sheet name="Ports" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<Relationships xmlns="{ns}package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{ns}officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet1.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": sheet_xml,
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


def nested_html(depth: int = 10_000, tag: str = "span", word: str | None = None) -> str:
    """`depth` elements nested in one another, with a word in each: the shape that made html-to-text quadratic.

    The words are numbered (`w0 w1 ...`) unless one `word` is given for all.
    """
    words = (word or f"w{i}" for i in range(depth))
    return "<html><body>" + "".join(f"<{tag}>{w} " for w in words) + f"</{tag}>" * depth + "</body></html>"


def many_parts_eml(parts: int = 12_500) -> bytes:
    """A message of `parts` tiny text attachments (about 100 bytes each)."""
    boundary = "b0undary"
    head = (
        f"Subject: Parts\r\nFrom: a@example.org\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
    )
    body = "".join(
        f'--{boundary}\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename="p{i}.txt"\r\n\r\n'
        f"part {i}\r\n"
        for i in range(parts)
    )
    return (head + body + f"--{boundary}--\r\n").encode()


def epub_utf16_entities(path: Path, depth: int = 6) -> Path:
    """An EPUB whose package file is UTF-16 and declares nested entities (a 'billion laughs')."""
    entities = '<!ENTITY e0 "laugh laugh laugh laugh laugh laugh laugh laugh laugh laugh">' + "".join(
        f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, depth)
    )
    opf = (
        f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE package [{entities}]>'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
        f"<metadata><title>&e{depth - 1};</title></metadata>"
        '<manifest><item id="c0" href="ch0.xhtml" media-type="application/xhtml+xml"/></manifest>'
        '<spine><itemref idref="c0"/></spine></package>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        _epub_frame(z)
        z.writestr("content.opf", opf.encode("utf-16"))
        z.writestr("ch0.xhtml", '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>Hi.</p></body></html>')
    return path


def nested_epub(path: Path, depth: int = 10_000, word: str | None = "w") -> Path:
    """An EPUB whose one chapter is `depth` nested elements (under 1 KB zipped with one word repeated).

    Numbered words (`word=None`) compress less, so a deeper chapter stays within the zip ratio limit.
    """
    chapter = nested_html(depth, "b", word).replace("<html>", '<html xmlns="http://www.w3.org/1999/xhtml">')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        _epub_frame(z)
        z.writestr(
            "content.opf",
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata/>'
            '<manifest><item id="c0" href="ch0.xhtml" media-type="application/xhtml+xml"/></manifest>'
            '<spine><itemref idref="c0"/></spine></package>',
        )
        z.writestr("ch0.xhtml", chapter)
    return path


def wide_csv(columns: int = 8_000_000) -> bytes:
    """A CSV whose second line has `columns` one-letter fields (16 MB)."""
    return b"name,value\n" + b"a," * (columns - 1) + b"a\n"


def big_pptx(path: Path, slides: int = 2500, shapes: int = 40) -> Path:
    """A deck of many slides, each with many text boxes (python-pptx held every slide's XML tree at once).

    One slide is made with python-pptx, then copied in the zip (adding slides one by one is quadratic).
    """
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[6])
    for i in range(shapes):
        box = slide.shapes.add_textbox(Inches(0.1), Inches(0.1), Inches(1), Inches(1))
        box.text_frame.text = f"box {i} of the harbour survey, with a sentence long enough to be a real slide"
    one = io.BytesIO()
    deck.save(one)
    ct = "application/vnd.openxmlformats-officedocument.presentationml.slide+xml"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide"
    with zipfile.ZipFile(one) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        xml, rels = src.read("ppt/slides/slide1.xml"), src.read("ppt/slides/_rels/slide1.xml.rels")
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "[Content_Types].xml":
                extra = "".join(f'<Override PartName="/ppt/slides/slide{n}.xml" ContentType="{ct}"/>'
                                for n in range(2, slides + 1))  # fmt: skip
                body = body.replace(b"</Types>", extra.encode() + b"</Types>")
            elif item.filename == "ppt/_rels/presentation.xml.rels":
                extra = "".join(f'<Relationship Id="rIdS{n}" Type="{rel}" Target="slides/slide{n}.xml"/>'
                                for n in range(2, slides + 1))  # fmt: skip
                body = body.replace(b"</Relationships>", extra.encode() + b"</Relationships>")
            elif item.filename == "ppt/presentation.xml":
                extra = "".join(f'<p:sldId id="{300 + n}" r:id="rIdS{n}"/>' for n in range(2, slides + 1))
                body = body.replace(b"</p:sldIdLst>", extra.encode() + b"</p:sldIdLst>")
            out.writestr(item.filename, body)
        for n in range(2, slides + 1):
            out.writestr(f"ppt/slides/slide{n}.xml", xml)
            out.writestr(f"ppt/slides/_rels/slide{n}.xml.rels", rels)
    return path


def _epub_frame(z: zipfile.ZipFile) -> None:
    """An EPUB's mimetype and container, naming `content.opf` as its package file."""
    z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
    z.writestr(
        "META-INF/container.xml",
        '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
        '<rootfiles><rootfile full-path="content.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>",
    )
