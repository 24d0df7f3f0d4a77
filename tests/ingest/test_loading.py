"""Loading: every supported format yields text, every bad file a reason, nothing raises."""

from __future__ import annotations

import os
from pathlib import Path

import formats_samples as samples
import pytest

from assistant.ingest.loading import (
    SUPPORTED_SUFFIXES,
    LoadResult,
    iter_files,
    load_file,
    load_paths,
    source_name,
)
from assistant.schema import Document, Skipped

PAGE_1 = "Alpha page one talks about apples."
PAGE_2 = "Beta page two talks about bananas."


def encrypt_pdf(source: Path, target: Path, user: str, owner: str | None = None) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(user, owner_password=owner)  # RC4: needs no crypto backend
    writer.write(target)
    return target


def reason(result: Document | Skipped) -> str:
    assert isinstance(result, Skipped), f"expected Skipped, got {result!r}"
    return result.reason


# -- text ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "encoding"),
    [
        ("utf8.txt", "Crème brûlée costs 5 €.\r\nSecond line\n", "utf-8"),
        ("latin1.txt", "Crème brûlée, naïve café.\n", "latin-1"),
        ("cp1252.md", "# Title\n\n“Smart quotes” – and € sign.\n", "cp1252"),
        ("utf16.txt", "Snowman ☃ and Ω in UTF-16.\n", "utf-16"),
        ("notes.markdown", "*plain* ascii\n", "ascii"),
    ],
)
def test_text_is_the_file_content_unchanged(tmp_path, name, content, encoding):
    path = tmp_path / name
    path.write_bytes(content.encode(encoding))
    doc = load_file(path)
    assert isinstance(doc, Document)
    assert doc.text == content  # \r\n kept, nothing normalised
    assert doc.pages == ()
    assert doc.source == path.resolve().as_posix()


def test_utf8_bom_is_decoded_away(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfhello")
    assert load_file(path).text == "hello"


def test_binary_and_empty_text_files_are_skipped(tmp_path):
    (tmp_path / "nul.txt").write_bytes(b"abc\x00def" * 10)
    (tmp_path / "noise.txt").write_bytes(bytes(range(1, 32)) * 20)
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "blank.txt").write_text("  \n\t\n")
    assert reason(load_file(tmp_path / "nul.txt")) == "binary file (not text)"
    assert reason(load_file(tmp_path / "noise.txt")) == "binary file (not text)"
    assert reason(load_file(tmp_path / "empty.md")) == "empty file"
    assert reason(load_file(tmp_path / "blank.txt")) == "empty file"


# -- html ----------------------------------------------------------------------------------------


def test_html_keeps_visible_text_only(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        "<!DOCTYPE html><html><head><title>Head title</title>"
        "<style>p { color: red }</style></head><body>"
        "<!-- a comment --><script>var secretScript = 1;</script>"
        "<h1>Main   title</h1><p>First\n   paragraph <b>bold</b>.</p>"
        "<noscript>noscript text</noscript><div hidden>hidden text</div>"
        "<table><tr><td>Apple</td><td>$5</td></tr></table></body></html>",
        encoding="utf-8",
    )
    doc = load_file(path)
    assert isinstance(doc, Document)
    assert doc.text.splitlines() == ["Main title", "First paragraph bold .", "Apple | $5"]
    for absent in ("secretScript", "color", "a comment", "Head title", "noscript", "hidden"):
        assert absent not in doc.text


def test_html_without_visible_text_is_skipped(tmp_path):
    path = tmp_path / "empty.htm"
    path.write_text("<html><head><script>x()</script></head><body> </body></html>")
    assert reason(load_file(path)) == "no visible text"


def test_html_declared_charset_is_honoured(tmp_path):
    path = tmp_path / "pl.html"
    path.write_bytes('<meta charset="iso-8859-2"><p>Zażółć</p>'.encode("iso-8859-2"))
    assert load_file(path).text == "Zażółć"


# -- pdf -----------------------------------------------------------------------------------------


def test_pdf_pages_are_spans_of_the_text(tmp_path):
    doc = load_file(samples.pdf(tmp_path / "two.pdf", [[PAGE_1], [PAGE_2]]))
    assert isinstance(doc, Document)
    assert [span.page for span in doc.pages] == [1, 2]
    first, second = doc.pages
    assert PAGE_1 in doc.text[first.start : first.end]
    assert PAGE_2 in doc.text[second.start : second.end]
    assert doc.text[first.end : second.start] == "\n\n"
    assert doc.page_at(doc.text.index("bananas")) == 2


def test_pdf_empty_page_keeps_page_numbers(tmp_path):
    doc = load_file(samples.pdf(tmp_path / "gap.pdf", [[PAGE_1], [], [PAGE_2]]))
    assert [span.page for span in doc.pages] == [1, 3]
    assert doc.page_at(doc.text.index("bananas")) == 3


def test_pdf_problems_are_reasons(tmp_path):
    good = samples.pdf(tmp_path / "good.pdf", [[PAGE_1], [PAGE_2]])
    locked = encrypt_pdf(good, tmp_path / "locked.pdf", user="secret")
    owner_only = encrypt_pdf(good, tmp_path / "owner.pdf", user="", owner="owner")
    truncated = tmp_path / "truncated.pdf"
    truncated.write_bytes(good.read_bytes()[:200])
    renamed = tmp_path / "renamed.pdf"
    renamed.write_text("I am not a PDF")
    scanned = samples.pdf(tmp_path / "scanned.pdf", [[], []])

    assert reason(load_file(locked)) == "encrypted PDF"
    assert PAGE_2 in load_file(owner_only).text  # opens with the empty user password
    assert reason(load_file(truncated)).startswith("corrupt or unreadable PDF: ")
    assert reason(load_file(renamed)) == "corrupt or unreadable PDF: not a PDF file"
    assert reason(load_file(scanned)) == "no extractable text (scanned PDF?)"


def test_damaged_pdf_is_recovered_quietly(tmp_path, capsys, caplog):
    data = samples.pdf(tmp_path / "good.pdf", [[PAGE_1], [PAGE_2]]).read_bytes()
    shifted = tmp_path / "shifted.pdf"  # every xref offset is now wrong: the reader recovers
    shifted.write_bytes(b"%PDF-1.4\n%junk junk\n" + data[data.index(b"\n") + 1 :])
    assert PAGE_2 in load_file(shifted).text
    load_file(tmp_path / "missing.pdf")
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]


# -- docx ----------------------------------------------------------------------------------------


def test_docx_paragraphs_and_tables_in_order(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("Report", level=1)
    document.add_paragraph("First paragraph.")
    document.add_paragraph("")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([("Fruit", "Price"), ("Apple", "$5")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("After the table.")
    path = tmp_path / "report.docx"
    document.save(path)

    doc = load_file(path)
    assert isinstance(doc, Document)
    assert doc.text == "Report\n\nFirst paragraph.\n\nFruit | Price\nApple | $5\n\nAfter the table."


def test_fake_docx_is_skipped(tmp_path):
    path = tmp_path / "fake.docx"
    path.write_text("plain text pretending to be a docx")
    assert reason(load_file(path)) == "not a valid .docx file"


# -- files and folders ---------------------------------------------------------------------------


def test_unsupported_and_too_large(tmp_path):
    (tmp_path / "data.xyz").write_text("hello")
    (tmp_path / "Makefile").write_text("all:")
    big = tmp_path / "big.txt"
    big.write_text("x" * 3 * 1024 * 1024)
    assert reason(load_file(tmp_path / "data.xyz")) == "unsupported file type '.xyz'"
    assert reason(load_file(tmp_path / "Makefile")) == "unsupported file type (no extension)"
    assert reason(load_file(big, max_bytes=2 * 1024 * 1024)) == ("file too large (3.0 MB > limit 2 MB)")
    assert isinstance(load_file(big, max_bytes=None), Document)
    assert ".PDF" not in SUPPORTED_SUFFIXES and ".pdf" in SUPPORTED_SUFFIXES


def test_uppercase_suffix_is_supported(tmp_path):
    path = tmp_path / "README.TXT"
    path.write_text("shout")
    assert load_file(path).text == "shout"


def test_missing_broken_link_and_folder(tmp_path):
    link = tmp_path / "dangling.txt"
    link.symlink_to(tmp_path / "gone.txt")
    result = load_paths([tmp_path / "nope", link])
    assert [s.reason for s in result.skipped] == ["no such file or folder", "broken symbolic link"]
    assert reason(load_file(tmp_path)) == "is a folder, not a file"


def test_unreadable_file_reports_os_reason(tmp_path, monkeypatch):
    path = tmp_path / "secret.txt"
    path.write_text("top secret")

    def deny(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", deny)
    assert reason(load_file(path)) == "cannot read file (Permission denied)"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file_for_real(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("top secret")
    path.chmod(0)
    try:
        assert "Permission denied" in reason(load_file(path))
    finally:
        path.chmod(0o644)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "b" / "c.md").write_text("c")
    (root / "b" / "deep" / "d.html").write_text("<p>d</p>")
    (root / "z.xyz").write_text("z")
    (root / ".hidden.txt").write_text("hidden")
    (root / ".git").mkdir()
    (root / ".git" / "config.txt").write_text("git")
    (root / "b" / "loop").symlink_to(root, target_is_directory=True)  # a symlink loop
    return root


def test_iter_files_walks_sorted_skipping_hidden_and_loops(tree):
    files = [p.relative_to(tree).as_posix() for p in iter_files([tree])]
    assert files == ["a.txt", "b/c.md", "b/deep/d.html", "z.xyz"]
    assert list(iter_files([tree])) == list(iter_files([tree]))  # deterministic
    assert list(iter_files(tree)) == list(iter_files([tree]))  # a lone path is fine too


def test_load_paths_reports_and_dedupes(tree):
    result = load_paths([tree, tree / "a.txt", tree / ".hidden.txt"])
    assert isinstance(result, LoadResult)
    names = [Path(d.source).name for d in result.documents]
    assert names == ["a.txt", "c.md", "d.html", ".hidden.txt"]  # explicit hidden file loads
    assert [(Path(s.path).name, s.reason) for s in result.skipped] == [("z.xyz", "unsupported file type '.xyz'")]


def test_source_name_is_resolved_posix_path(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert source_name(Path("b/../a.txt")) == (tree / "a.txt").resolve().as_posix()
    assert load_file(Path("a.txt")).source == source_name(tree / "a.txt")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_is_not_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")  # reading it would block forever
    assert reason(load_file(tmp_path / "pipe.txt")) == "not a regular file"


def test_an_index_folder_inside_is_not_walked_but_its_uploads_are(tmp_path):
    (tmp_path / "notes.txt").write_text("Notes about the budget.")
    index = tmp_path / "index"
    (index / "keyword" / "local-docs").mkdir(parents=True)
    (index / "chroma.sqlite3").write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    (index / "keyword" / "local-docs" / "ids.json").write_text("[]")
    (index / "uploads").mkdir()
    (index / "uploads" / "report.txt").write_text("An uploaded report.")
    other = tmp_path / "chroma-data"  # a Chroma server's folder, not ours: skipped as well
    (other / "0b1e").mkdir(parents=True)
    (other / "chroma.sqlite3").write_bytes(b"SQLite format 3\x00")
    (other / "0b1e" / "header.bin").write_bytes(b"\x00\x01")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path])]
    assert found == ["index/uploads/report.txt", "notes.txt"]
    result = load_paths([tmp_path])
    assert not result.skipped and len(result.documents) == 2
