"""Where a citation points: the page or slide its quote is on, the heading path above it."""

from __future__ import annotations

from pathlib import Path

import formats_samples as samples
import pytest
from formats_samples import pptx

from assistant.ingest.loading import load_file


def docx_with_headings(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading("Field guide", level=1)
    d.add_paragraph("General remarks about the valley and its weather in spring.")
    d.add_heading("Beekeeping", level=2)
    d.add_paragraph("The Harrowgate mill grinds exactly 93 sacks of flour every day.")
    d.save(path)
    return path


@pytest.fixture(scope="module")
def assistant(tmp_path_factory):
    from assistant import Assistant

    base = tmp_path_factory.mktemp("locations")
    docs = base / "docs"
    docs.mkdir()
    samples.pdf(docs / "apiary.pdf", samples.APIARY_PAGES)
    docx_with_headings(docs / "guide.docx")
    (docs / "notes.md").write_text(
        "# Harbour\n\nThe harbour is old.\n\n## Lighthouse\n\nThe Velmora lighthouse keeper is Ondrea Kasprzak.\n",
        encoding="utf-8",
    )
    (docs / "page.html").write_text(
        "<html><body><h1>Atlas</h1><p>Intro text about maps.</p><h2>Rivers</h2>"
        "<p>The Quill river is 212 kilometres long.</p></body></html>",
        encoding="utf-8",
    )
    slides = [(f"Topic {i}", f"The {c} team meets on floor {i} of the tower every week.", "")
              for i, c in enumerate(["red", "orange", "yellow", "green", "teal", "blue", "violet"], 1)]  # fmt: skip
    pptx(docs / "deck.pptx", slides)
    a = Assistant(index_dir=base / "index", seeds_dir=docs, progress=False)
    report = a.index([docs])
    assert not report.skipped
    return a


def test_a_quote_is_labelled_with_the_page_it_is_on_not_the_page_its_passage_starts_on(assistant):
    ans = assistant.answer("How many beehives does the Brindlemoor apiary keep?")
    cited = [c for c in ans.citations if c.source.endswith("apiary.pdf")]
    assert cited, ans
    c = cited[0]
    assert "417" in c.quote and c.quote in c.text
    assert c.start < c.text.index("417") + c.start  # the passage starts before the quote ...
    assert "Mount Tarrow" in c.text  # ... on page 1 (same passage)
    assert c.page == 2


def test_slides_are_passages_of_their_own_labelled_with_their_slide(assistant):
    ans = assistant.answer("On which floor does the teal team meet?")
    c = next(c for c in ans.citations if c.source.endswith("deck.pptx"))
    assert "teal team" in c.text and "blue team" not in c.text and "green team" not in c.text
    assert c.page == 5


def test_pptx_passages_hold_one_slide(tmp_path):
    from assistant import Assistant

    slides = [(f"Topic {i}", f"Body of slide {i} explains point number {i} in some words.", "") for i in range(1, 8)]
    doc = load_file(pptx(tmp_path / "d.pptx", slides))
    chunks = Assistant(index_dir=tmp_path / "i", progress=False).indexer.chunker.split(doc)
    assert len(chunks) == 7
    assert [c.page for c in chunks] == list(range(1, 8))


@pytest.mark.parametrize(
    ("question", "name", "path"),
    [
        ("How many sacks of flour does the Harrowgate mill grind?", "guide.docx", "Field guide › Beekeeping"),
        ("Who is the Velmora lighthouse keeper?", "notes.md", "Harbour › Lighthouse"),
        ("How long is the Quill river?", "page.html", "Atlas › Rivers"),
    ],
)
def test_docx_html_and_markdown_quotes_carry_their_heading_path(assistant, question, name, path):
    ans = assistant.answer(question)
    cited = [c for c in ans.citations if c.source.endswith(name)]
    assert cited, ans
    assert cited[0].section == path
    assert cited[0].page is None
