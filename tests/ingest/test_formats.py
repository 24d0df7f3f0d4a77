"""The new file types through the real loader: what text each gives, where pages are, what is kept.

Hostile cases (corrupt, wrong extension, password-protected, bombs, huge sheets) are in test_hostile.py.
"""

from __future__ import annotations

import formats_samples as samples

from assistant.ingest.chunking import paragraphs
from assistant.ingest.loading import SUPPORTED_SUFFIXES, load_file
from assistant.schema import Document


def test_every_new_type_is_supported_from_the_one_list():
    assert {".pptx", ".xlsx", ".csv", ".epub", ".eml"} <= set(SUPPORTED_SUFFIXES)


def test_pptx_slides_notes_and_page_numbers(tmp_path):
    deck = samples.pptx(tmp_path / "deck.pptx", [
        ("Harbour plan", "Dredging starts in May", "Mention the budget of 4 million"),
        ("Empty", "", ""),
        ("Risks", "Storms delay the work", ""),
    ])  # fmt: skip
    doc = load_file(deck)
    assert isinstance(doc, Document)
    assert [p.page for p in doc.pages] == [1, 2, 3]
    for span, words in zip(doc.pages, ("Notes: Mention the budget", "Empty", "Storms delay"), strict=True):
        assert words in doc.text[span.start : span.end]
    assert doc.page_at(doc.text.index("Storms")) == 3


def test_xlsx_row_groups_repeat_the_header_and_keep_the_sheet(tmp_path):
    rows = [["Harbour", "Depth (m)", "Opened"]] + [[f"Harbour {i}", i + 0.5, 1900 + i] for i in range(120)]
    book = samples.xlsx(tmp_path / "ports.xlsx", {"Ports": rows, "Notes": [["Remark"], ["Quiet winter"]]})
    doc = load_file(book)
    groups = [doc.text[p.start : p.end] for p in paragraphs(doc.text)]
    port_groups = [g for g in groups if g.startswith("Sheet: Ports")]
    assert len(port_groups) > 3 and all(g.split("\n")[1] == "Harbour | Depth (m) | Opened" for g in port_groups)
    assert all(len(g) < 800 for g in port_groups)
    assert "Harbour: Harbour 7 | Depth (m): 7.5 | Opened: 1907" in doc.text
    assert "Harbour: Harbour 119 | Depth (m): 119.5 | Opened: 2019" in doc.text
    assert "Sheet: Notes\nRemark\nRemark: Quiet winter" in doc.text


def test_csv_delimiter_and_encoding(tmp_path):
    (tmp_path / "people.csv").write_bytes("Name;City\nJosé;Málaga\n".encode("cp1252"))
    doc = load_file(tmp_path / "people.csv")
    assert doc.text == "Sheet: people.csv\nName | City\nName: José | City: Málaga"


def test_epub_chapters_in_spine_order(tmp_path):
    chapters = [("One", "The keeper counted ships."), ("Two", "Fog came <b>at noon</b> today.")]
    doc = load_file(samples.epub(tmp_path / "b.epub", chapters))
    assert doc.text == "One\nThe keeper counted ships.\n\nTwo\nFog came at noon today."


def test_eml_headers_body_and_text_attachments(tmp_path):
    mail = samples.eml(
        tmp_path / "m.eml",
        subject="Quarterly figures",
        sender="Ann <ann@example.org>",
        body="Hi team,\nthe figures are attached.",
        attachment=("notes.txt", "Revenue grew 8 percent."),
    )
    doc = load_file(mail)
    assert doc.text.startswith("Subject: Quarterly figures\nFrom: Ann <ann@example.org>\nTo: team@example.org\nDate: ")
    assert "the figures are attached." in doc.text and "Attachment: notes.txt\n\nRevenue grew 8 percent." in doc.text
    assert "PNG" not in doc.text  # binary attachments are left out


def test_eml_encoded_headers_charsets_and_html_body(tmp_path):
    """Headers in encoded words, a Latin-1 body, an html-only body: decoded as a mail client shows them."""
    raw = (
        "Subject: =?utf-8?q?Caf=C3=A9_opening_hours?=\r\nFrom: =?iso-8859-1?q?J=F6rg?= <j@example.org>\r\n"
        "Date: Tue, 03 Mar 2026 09:15:00 +0000\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "<p>The caf=E9 opens at <b>seven</b> sharp</p>\r\n"
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
        'Content-Disposition: attachment; filename="=?utf-8?q?M=C3=BCnster.txt?="\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nTcO8bnN0ZXIgY2xvc2VzIGF0IG5vb24u\r\n--b--\r\n"
    )
    (tmp_path / "m.eml").write_bytes(raw.encode())
    doc = load_file(tmp_path / "m.eml")
    assert doc.text.startswith("Subject: Café opening hours\nFrom: Jörg <j@example.org>\nDate: "), doc.text
    assert "The café opens at seven sharp" in doc.text
    assert "Attachment: Münster.txt\n\nMünster closes at noon." in doc.text
