"""Builders of small real files of each new format, made with the libraries users' tools use."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage
from pathlib import Path


def pptx(path: Path, slides: list[tuple[str, str, str]]) -> Path:
    """A presentation: one slide per (title, body, notes)."""
    from pptx import Presentation

    deck = Presentation()
    for title, body, notes in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    deck.save(path)
    return path


def xlsx(path: Path, sheets: dict[str, list[list]]) -> Path:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def epub(path: Path, chapters: list[tuple[str, str]], *, encrypted: bool = False) -> Path:
    """An EPUB 3 container: mimetype, container.xml, an OPF with manifest and spine, XHTML chapters."""
    items = "".join(f'<item id="c{i}" href="text/ch{i}.xhtml" media-type="application/xhtml+xml"/>'
                    for i in range(len(chapters)))  # fmt: skip
    spine = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters)))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
            '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        z.writestr(
            "OEBPS/content.opf",
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            f"<metadata/><manifest>{items}</manifest><spine>{spine}</spine></package>",
        )
        for i, (title, body) in enumerate(chapters):
            z.writestr(f"OEBPS/text/ch{i}.xhtml", f'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>{title}'
                       f"</title></head><body><h1>{title}</h1><p>{body}</p></body></html>")  # fmt: skip
        if encrypted:
            z.writestr(
                "META-INF/encryption.xml",
                '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:CipherData>'
                '<enc:CipherReference URI="OEBPS/text/ch0.xhtml"/></enc:CipherData></enc:EncryptedData></encryption>',
            )
    return path


def eml(path: Path, *, subject: str, sender: str, body: str, attachment: tuple[str, str] | None = None) -> Path:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = "team@example.org"
    message["Date"] = "Tue, 03 Mar 2026 09:15:00 +0000"
    message.set_content(body)
    if attachment:
        name, text = attachment
        message.add_attachment(text, subtype="plain", filename=name)
    message.add_attachment(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, maintype="image", subtype="png", filename="logo.png")
    path.write_bytes(message.as_bytes())
    return path


def encrypted_ooxml(source: Path, target: Path, password: str = "secret") -> Path:
    """An Office file saved with a password: an OLE container around the encrypted package."""
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    with open(source, "rb") as f:
        OOXMLFile(f).encrypt(password, out)
    target.write_bytes(out.getvalue())
    return target


# Two pages of a made-up apiary report: the count asked about is on page 2, below an unrelated page 1.
APIARY_PAGES = [
    [
        "Notes from the Brindlemoor apiary, season report.",
        "The apiary sits on the northern slope of Mount Tarrow",
        "and its hives face the morning sun across the valley.",
    ],
    [
        "The Brindlemoor apiary keeps exactly 417 beehives in total.",
        "Its honey is sold every Thursday at the Quenby market.",
    ],
]


def pdf(path: Path, pages: list[list[str]]) -> Path:
    """A PDF with a text layer: each page draws its lines top down (an empty page draws nothing)."""
    from reportlab.pdfgen import canvas

    out = canvas.Canvas(str(path))
    for lines in pages:
        for i, line in enumerate(lines):
            out.drawString(72, 720 - 16 * i, line)
        out.showPage()
    out.save()
    return path
