"""Questions about whole documents, through the real model and a real index of files built here.

Who wrote it (from the PDF's properties, or from page 1's byline, or a slide deck's title slide),
what it is about (from the overview), what it is called; a file without a title; a question
limited to one of two documents that both answer it; and a question about something the documents
mention but do not say (declined).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import Assistant
from assistant.errors import SourceError
from assistant.ingest.loading import load_file
from assistant.ingest.records import RecordBuilder
from tests.formats_samples import pptx

BODY = (
    "Tidal power converts the energy of tides into electricity. The barrage at La Rance has run since 1966. "
    "Tidal turbines sit in fast currents between islands, where the water moves twice a day. "
    "Maintenance below the surface is the largest cost of a tidal farm, since divers and vessels are expensive. "
    "Engineers estimate that tidal power could supply a tenth of the electricity of coastal countries."
)


def _paper(path: Path, *, title: str, byline: str | None, author_property: str | None, pages: list[str]) -> Path:
    """A paper: the title in large type on page 1, an optional byline under it, then the body text."""
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path))
    if author_property:
        pdf.setAuthor(author_property)
    for number, text in enumerate(pages):
        y = 740
        if number == 0:
            pdf.setFont("Helvetica-Bold", 20)
            pdf.drawString(72, y, title)
            y -= 34
            if byline:
                pdf.setFont("Helvetica", 11)
                pdf.drawString(72, y, byline)
                y -= 30
        pdf.setFont("Helvetica", 10)
        for line in _wrap(text, 90):
            pdf.drawString(72, y, line)
            y -= 14
        pdf.showPage()
    pdf.save()
    return path


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("library")
    _paper(
        folder / "tides.pdf",
        title="Tidal Power in Coastal Grids",
        byline=None,
        author_property="Miriam Okafor",
        pages=[BODY, "Questions about this study go to Miriam Okafor at the coastal energy institute."],
    )
    _paper(
        folder / "glaciers.pdf",
        title="Glacier Retreat in the Alps",
        byline="Henrik Solberg and Lucia Ferraro",
        author_property=None,
        pages=[
            "Alpine glaciers have lost about half of their volume since 1900. Warmer summers melt more ice than "
            "winter snow replaces. Meltwater feeds rivers in summer, and smaller glaciers will reduce that water. "
            "Henrik Solberg measured the Rhone glacier every year with stakes drilled into the ice."
        ],
    )
    pptx(
        folder / "harbour-talk.pptx",
        [
            ("Rebuilding the Old Harbour", "Presented by Tomasz Wielgosz", ""),
            (
                "Why rebuild",
                "The quay walls are crumbling after a century of storms.\nShips now need deeper berths.",
                "",
            ),
            (
                "The plan",
                "New concrete caissons will replace the walls.\nDredging will deepen the berths to 14 metres.",
                "",
            ),
        ],
    )
    (folder / "notes.txt").write_text(
        "the committee met on a rainy tuesday and agreed that the bridge repairs must start before the winter "
        "storms arrive, because the cracked supports will not survive another season of floods.\n\n"
        "The repairs will close the bridge to cars for six weeks, while cyclists and pedestrians may still cross. "
        "The council will pay for the work from the road maintenance budget.\n",
        encoding="utf-8",
    )
    index = tmp_path_factory.mktemp("library-index")
    a = Assistant(index_dir=index, progress=False)
    a.index([folder])
    return a, folder


def _records(a: Assistant) -> dict:
    return {Path(s).name: r for s, r in a.records().items()}


def test_every_record_field_is_the_documents_text_at_its_offsets(library):
    a, folder = library
    for name, record in _records(a).items():
        text = load_file(folder / name).text
        fields = [record.title, record.date, *record.authors, *record.outline, *record.overview]
        for f in (f for f in fields if f is not None):
            assert text[f.start : f.end] == f.text, (name, f)


def test_author_only_in_the_pdf_properties(library):
    a, _ = library
    record = _records(a)["tides.pdf"]
    assert [x.text for x in record.authors] == ["Miriam Okafor"]
    assert record.title is not None and record.title.text == "Tidal Power in Coastal Grids"
    answer = a.answer("Who wrote Tidal Power in Coastal Grids?")
    assert not answer.abstained and "Miriam Okafor" in answer.text
    assert any("Miriam Okafor" in c.quote and Path(c.source).name == "tides.pdf" for c in answer.citations)


def test_author_only_on_page_one(library):
    a, _ = library
    record = _records(a)["glaciers.pdf"]
    assert [x.text for x in record.authors] == ["Henrik Solberg", "Lucia Ferraro"]
    answer = a.answer("Who wrote the glacier retreat paper?")
    assert "Henrik Solberg" in answer.text and "Lucia Ferraro" in answer.text
    cited = answer.citations[0]
    assert cited.text[cited.text.index("Henrik") :].startswith("Henrik Solberg")
    follow = a.answer("What is it about?", history=[("Who wrote the glacier retreat paper?", answer.text)])
    assert all(Path(c.source).name == "glaciers.pdf" for c in follow.citations) and follow.citations


def test_slide_deck_presenter_and_overview(library):
    a, _ = library
    answer = a.answer("Who presented Rebuilding the Old Harbour?")
    assert "Tomasz Wielgosz" in answer.text and answer.citations
    about = a.answer("What is the harbour talk about?")
    assert not about.abstained and {Path(c.source).name for c in about.citations} == {"harbour-talk.pptx"}
    assert any(w in about.text for w in ("quay", "caissons", "berths"))
    for c in about.citations:
        assert c.quote in c.text
    outline = [o.text for o in _records(a)["harbour-talk.pptx"].outline]
    assert outline[:3] == ["Rebuilding the Old Harbour", "Why rebuild", "The plan"]


def test_a_file_without_a_title(library):
    a, _ = library
    record = _records(a)["notes.txt"]
    assert record.title is None
    assert record.overview, "an overview is chosen even without a title or a summary section"
    answer = a.answer("Summarise it", sources=["notes.txt"])
    assert not answer.abstained
    assert {Path(c.source).name for c in answer.citations} == {"notes.txt"}
    assert "[1]" in answer.text
    unsaid = a.answer("Who wrote it?", sources=["notes.txt"])  # named, but it names no author
    assert unsaid.abstained and "does not say who wrote" in unsaid.text and not unsaid.citations


def test_a_question_scoped_to_one_of_two_documents_that_both_match(library):
    a, _ = library
    question = "Who measured glaciers or tides?"
    both = {Path(p.chunk.source).name for p in a.retrieve(question, k=8)}
    assert {"glaciers.pdf", "tides.pdf"} <= both
    scoped = a.retrieve(question, k=8, sources=a.resolve_sources(["tides.pdf"]))
    assert scoped and {Path(p.chunk.source).name for p in scoped} == {"tides.pdf"}
    answer = a.answer("Who wrote the paper?", sources=["glaciers.pdf"])
    assert "Henrik Solberg" in answer.text and "Miriam" not in answer.text
    with pytest.raises(SourceError, match="No indexed document"):
        a.answer("Who wrote it?", sources=["missing.pdf"])


def test_something_the_documents_mention_but_do_not_say_is_declined(library):
    a, _ = library
    assert a.answer("When was Henrik Solberg born?").abstained
    assert a.answer("How much did the harbour rebuilding cost?").abstained
    said = a.answer("How deep will the berths be dredged?")
    assert not said.abstained and "14" in said.text


def test_the_record_of_a_loaded_document_without_its_file(tmp_path):
    from assistant.schema import Document

    doc = Document("memo.md", "# Budget memo\n\nBy Dana Whitfield\n\nThe budget grows by four percent next year.")
    record = RecordBuilder().build(doc)
    assert record.title is not None and record.title.text == "Budget memo"
    assert [x.text for x in record.authors] == ["Dana Whitfield"]
