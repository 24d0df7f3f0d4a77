"""PDF text reads like the text that was typeset: PDFs made here with reportlab, laid out as papers
and reports are (two columns, hyphenated line ends, running headers, page numbers, footnotes,
landscape pages), must come back paragraph for paragraph, in reading order."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from assistant.ingest.chunking import sentences
from assistant.ingest.loading import load_file
from assistant.schema import Document, Skipped

# Where the typesetter may break a long word (as a hyphenation dictionary would say).
_BREAKS = (
    "rela-tion-ship re-fer-en-tial ex-pla-na-tion ex-pla-na-tions in-for-ma-tion con-fir-ma-tion an-no-ta-tors "
    "an-no-tated ex-am-ples dis-tri-bu-tion pre-dic-tion ques-tions doc-u-ments sys-tem-at-i-cally "
    "un-der-stand-ing gen-er-ated sen-tences"
)
HYPHENATION = {w.replace("-", ""): w for w in _BREAKS.split(" ")}
TITLE = "Measuring Layout in Documents"
PARAGRAPHS = [
    "We describe a dataset of explanations that specify the relationship between a question and its "
    "answer. Every explanation names the referential equalities between the question and the passage, "
    "and annotators marked each one by hand.",
    "The annotators annotated seven thousand examples in total, and the distribution of examples over "
    "categories was recorded systematically. Each question-answer pair was checked twice by different "
    "annotators, and disagreements were resolved by discussion before the prediction models were trained.",
    "Understanding the documents requires information about their layout. Our confirmation step showed "
    "that explanations generated this way are faithful to the passage, since every referential link "
    "can be verified against the sentences of the document.",
    "In the second study the annotated examples were shown to raters, who used the explanations to spot "
    "errors. The raters found more errors with explanations than without them, and they were faster.",
    "Finally we release the data and the code, together with the question-answer pairs and the "
    "explanations, so that others can build systems that explain their predictions to the people who "
    "use them every day.",
]
FOOTNOTE = "The data is available from the authors on request."
HEADER = "Journal of Layout Studies, Volume 3"


@dataclass
class Typesetter:
    """Draws paragraphs into frames (columns) line by line, breaking long words with a hyphen."""

    canvas: object
    frames: list[tuple[int, float, float, float, float]]  # (page, x, top, width, bottom)
    font: str = "Times-Roman"
    size: float = 10
    leading: float = 12
    indent: float = 10
    pages_done: int = 0
    frame: int = 0
    y: float = field(default=0.0)
    footnotes: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.y = self.frames[0][2]

    def width(self, text: str) -> float:
        from reportlab.pdfbase.pdfmetrics import stringWidth

        return stringWidth(text.replace("^1", ""), self.font, self.size)

    def paragraph(self, text: str) -> None:
        words, first = text.split(), True
        while words:
            room = self.frames[self.frame][3] - (self.indent if first else 0)
            line: list[str] = []
            while words and self.width(" ".join([*line, words[0]])) <= room:
                line.append(words.pop(0))
            if words and (broken := self._hyphenate(words[0], room - self.width(" ".join([*line, ""])))):
                line.append(broken[0])
                words[0] = broken[1]
            self._draw(" ".join(line), self.indent if first else 0)
            first = False

    def _hyphenate(self, word: str, room: float) -> tuple[str, str] | None:
        bare = word.rstrip(".,")
        points = HYPHENATION.get(bare.lower(), bare if "-" in bare else "")
        parts = points.split("-")
        for k in range(len(parts) - 1, 0, -1):
            head = "".join(parts[:k]) if "-" not in bare else "-".join(parts[:k])
            if bare[0].isupper():
                head = head[0].upper() + head[1:]
            if self.width(head + "-") <= room:
                return head + "-", word[len(head) + (1 if "-" in bare else 0) :]
        return None

    def _draw(self, line: str, indent: float) -> None:
        page, x, _, _, bottom = self.frames[self.frame]
        if self.y < bottom:
            self.frame += 1
            page, x, top, _, bottom = self.frames[self.frame]
            self.y = top
            if page != self.frames[self.frame - 1][0]:
                self._finish_page()
        c = self.canvas
        c.setFont(self.font, self.size)
        head, mark, tail = line.partition("^1")
        c.drawString(x + indent, self.y, head)
        if mark:
            w = self.width(head)
            c.setFont(self.font, 6)
            c.drawString(x + indent + w, self.y + 4, "1")
            c.setFont(self.font, self.size)
            c.drawString(x + indent + w + 3.5, self.y, tail)
            self.footnotes[page] = FOOTNOTE
        self.y -= self.leading

    def _finish_page(self) -> None:
        c = self.canvas
        self.pages_done += 1
        c.setFont("Times-Italic", 8)
        c.drawString(72, 760, HEADER)
        c.setFont(self.font, 9)
        c.drawCentredString(306, 40, str(self.pages_done))
        if self.pages_done in self.footnotes:
            c.setFont(self.font, 6)
            c.drawString(72, 86, "1")
            c.setFont(self.font, 8)
            c.drawString(76, 82, self.footnotes[self.pages_done])
        c.showPage()

    def finish(self) -> None:
        self._finish_page()


def two_column_paper(path: Path, paragraphs: list[str] = PARAGRAPHS, *, marker: bool = True, width: int = 192) -> Path:
    """A two-page, two-column paper: title across both columns, running header, page numbers."""
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=(612, 792))
    c.setFont("Times-Bold", 16)
    c.drawCentredString(306, 712, TITLE)
    frames = [(1, 72, 680, width, 580), (1, 320, 680, width, 580), (2, 72, 720, width, 80), (2, 320, 720, width, 80)]
    setter = Typesetter(c, frames)
    for i, p in enumerate(paragraphs):
        setter.paragraph(p.replace("dataset of", "dataset^1 of") if marker and i == 0 else p)
    setter.finish()
    c.save()
    return path


def _flat(text: str) -> str:
    return " ".join(text.split())


# -- reading order, paragraphs, hyphenation ------------------------------------------------------


def _line_ends(path: Path) -> list[str]:
    """Words that end a printed line with a hyphen (read by pypdf, an independent reader)."""
    from pypdf import PdfReader

    text = "\n".join(page.extract_text() for page in PdfReader(path).pages)
    return [line.split()[-1] for line in text.splitlines() if line.endswith("-")]


@pytest.mark.parametrize(("width", "broken"), [(192, "infor-"), (224, "question-")])
def test_two_columns_read_as_the_paragraphs_that_were_typeset(tmp_path, width, broken):
    path = two_column_paper(tmp_path / "paper.pdf", width=width)
    assert broken in _line_ends(path)  # the layout really breaks words (or a compound) at line ends
    doc = load_file(path)
    assert isinstance(doc, Document), doc
    paragraphs = doc.text.split("\n\n")
    assert paragraphs[0] == TITLE
    body = [p for p in paragraphs if p in PARAGRAPHS]
    assert body == PARAGRAPHS, [p for p in paragraphs if p not in PARAGRAPHS]  # whole, in order
    assert doc.text.count("question-answer") == 2  # a compound keeps its hyphen at a line end


def test_headers_page_numbers_and_footnotes_are_kept_apart(tmp_path):
    doc = load_file(two_column_paper(tmp_path / "paper.pdf"))
    paragraphs = doc.text.split("\n\n")
    assert HEADER not in doc.text
    assert not [p for p in paragraphs if re.fullmatch(r"\d+", p)]  # bare page numbers dropped
    assert f"1 {FOOTNOTE}" in paragraphs  # the footnote is its own paragraph, with its number
    assert "dataset of explanations" in doc.text  # and its mark is gone from the sentence
    # It follows the paragraph in which its page ends, so it never cuts a sentence in two.
    page_two = next(span.start for span in doc.pages if span.page == 2)
    broken = doc.text.count("\n\n", 0, page_two)
    assert paragraphs[broken] in PARAGRAPHS and paragraphs[broken + 1] == f"1 {FOOTNOTE}"


def test_a_paragraph_broken_across_pages_keeps_both_page_numbers(tmp_path):
    doc = load_file(two_column_paper(tmp_path / "paper.pdf"))
    assert {span.page for span in doc.pages} == {1, 2}
    first, last = PARAGRAPHS[0], PARAGRAPHS[-1]
    assert doc.page_at(doc.text.index(first)) == 1
    assert doc.page_at(doc.text.index(last) + len(last) - 1) == 2
    for span in doc.pages:
        piece = doc.text[span.start : span.end]
        assert piece == piece.strip() and piece


def test_every_sentence_of_the_paper_is_a_sentence_that_was_typeset(tmp_path):
    doc = load_file(two_column_paper(tmp_path / "paper.pdf", marker=False))
    typeset = {doc_text for p in PARAGRAPHS for doc_text in (p[s.start : s.end] for s in sentences(p))}
    found = [doc.text[s.start : s.end] for s in sentences(doc.text)]
    body = [s for s in found if s not in (TITLE, f"1 {FOOTNOTE}")]
    assert set(body) == typeset


def _ttf() -> str | None:
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf"):
        if Path(path).exists():
            return path
    return None


@pytest.mark.skipif(_ttf() is None, reason="needs the DejaVu Sans font (fonts-dejavu-core) for ligature glyphs")
def test_ligatures_zero_width_and_soft_hyphens_are_normalised(tmp_path):
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(TTFont("DejaVu", _ttf()))
    path = tmp_path / "marks.pdf"
    c = canvas.Canvas(str(path))
    c.setFont("DejaVu", 11)
    lines = [
        "The \ufb01nal o\ufb03ce \ufb02oor was co\u00adoperative and the\u200b team was",
        "ready for the infor\u00ad",
        "mation that the \ufb01eld work produced.",
    ]
    for i, line in enumerate(lines):
        c.drawString(72, 720 - 14 * i, line)
    c.save()
    doc = load_file(path)
    assert doc.text == (
        "The final office floor was cooperative and the team was ready for the information that the "
        "field work produced."
    )


def test_a_landscape_page_and_rotated_stamps(tmp_path):
    from reportlab.pdfgen import canvas

    path = tmp_path / "landscape.pdf"
    c = canvas.Canvas(str(path), pagesize=(612, 792))
    c.setPageRotation(90)  # shown turned: the text is drawn turned the other way to read upright
    c.saveState()
    c.translate(540, 72)
    c.rotate(90)
    c.setFont("Helvetica", 11)
    c.drawString(0, 0, "Quarterly revenue grew in every region of the company.")
    c.drawString(0, -14, "The board approved the budget for the next year.")
    c.restoreState()
    c.setFont("Helvetica", 7)
    c.drawString(40, 40, "arXiv:2101.00001 stamp")  # level in the file, so it reads sideways: dropped
    c.showPage()
    c.save()
    doc = load_file(path)
    assert isinstance(doc, Document), doc
    assert [doc.text[s.start : s.end] for s in sentences(doc.text)] == [
        "Quarterly revenue grew in every region of the company.",
        "The board approved the budget for the next year.",
    ]


# -- what the PDF loses is said once ---------------------------------------------------------------


def _png() -> bytes:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    raw = b"".join(b"\x00" + b"\x80\x80\x80" * 8 for _ in range(8))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", (8).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00")
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_a_scanned_page_among_text_pages_is_reported_once(tmp_path, monkeypatch):
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    monkeypatch.setenv("ASSISTANT_OCR", "off")  # what is said without OCR; tests/ingest/test_ocr.py reads such pages

    (tmp_path / "docs").mkdir()
    path = tmp_path / "docs" / "mixed.pdf"
    c = canvas.Canvas(str(path))
    c.drawString(72, 720, "The first page has text about apples.")
    c.showPage()
    c.drawImage(ImageReader(io.BytesIO(_png())), 72, 72, width=400, height=600)
    c.showPage()
    c.drawString(72, 720, "The third page has text about pears.")
    c.showPage()
    c.save()
    doc = load_file(path)
    assert isinstance(doc, Document)
    assert doc.warnings == ("page 2 is an image without text, not searchable (no OCR)",)
    assert [span.page for span in doc.pages] == [1, 3]
    # Indexed all the same, and the index report says it once.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ASSISTANT_PROGRESS": "0"}
    command = [sys.executable, "-m", "assistant", "--index-dir", str(tmp_path / "index"), "index", "--json"]
    run = subprocess.run(
        [*command, str(path.parent)],
        capture_output=True, text=True, env=env, timeout=300, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    report = json.loads(run.stdout)
    assert (report["added"], report["skipped"]) == (1, [])
    assert report["warnings"] == [{"path": doc.source, "reason": doc.warnings[0]}]


def test_the_pdf_library_prints_nothing(tmp_path, capfd):
    data = two_column_paper(tmp_path / "paper.pdf").read_bytes()
    damaged = tmp_path / "damaged.pdf"
    damaged.write_bytes(b"%PDF-1.4\n%junk junk\n" + data[data.index(b"\n") + 1 :])
    assert "relationship" in load_file(damaged).text
    truncated = tmp_path / "truncated.pdf"
    truncated.write_bytes(data[: len(data) // 3])
    assert isinstance(load_file(truncated), Document | Skipped)
    out, err = capfd.readouterr()
    assert out == err == ""


def test_text_repeated_in_the_same_spot_is_not_taken_for_a_header(tmp_path):
    from reportlab.pdfgen import canvas

    path = tmp_path / "example.pdf"
    c = canvas.Canvas(str(path), pagesize=(612, 792))
    for page in (1, 2):
        c.setFont("Times-Roman", 10)
        c.drawString(72, 760, "Example: the river rose by two metres overnight.")
        c.drawString(72, 748, f"On page {page} the example is discussed again in more detail.")
        c.showPage()
    c.save()
    doc = load_file(path)
    assert doc.text.count("Example: the river rose by two metres overnight.") == 2
