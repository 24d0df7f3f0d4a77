"""PowerPoint .pptx: each slide's text and notes, the slide number as the page, read one slide at a time.

Why not python-pptx here: it parses every XML part of the package when it opens it, so a deck of
2,500 large slides held all of their trees at once (552 MB) before its text was found too long.
The slides are read here in presentation order straight from the zip (checked for bombs before
this runs), one tree at a time, with the text rules python-pptx's `text` properties follow:
a text frame's paragraphs, a table's rows with cells joined by " | ", a group's shapes in order,
and the notes placeholder of the slide's notes page.
"""

from __future__ import annotations

import io
import posixpath
import zipfile

from assistant.ingest.formats.office import not_ooxml
from assistant.ingest.limits import step
from assistant.schema import Document, PageSpan, Skipped

_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_P = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_NOTES = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/notesSlide"
_OFFICE_DOCUMENT = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"


class _BadDeck(ValueError):
    """The package is not a presentation this reader can follow."""


def load(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    """Slide text (titles, text boxes, tables, grouped shapes) then the speaker notes, one page per slide.

    Args:
        name: The source to record.
        data: The file's bytes.
        max_chars: More text than this is refused as a possible decompression bomb.
    """
    if reason := not_ooxml(data, ".pptx"):
        return Skipped(name, reason)
    parts: list[str] = []
    pages: list[PageSpan] = []
    at = 0
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as deck:
            for number, slide in enumerate(_slides(deck), 1):
                step()
                text = _slide_text(deck, slide)
                if not text:
                    continue
                if parts:
                    at += 2  # the blank line between slides
                pages.append(PageSpan(number, at, at + len(text)))
                parts.append(text)
                at += len(text)
                if at > max_chars:
                    return Skipped(name, f"expands to more than {max_chars:,} characters (possible decompression bomb)")
    except Exception:  # zip, xml, package and key errors alike
        return Skipped(name, "not a valid .pptx file")
    text = "\n\n".join(parts)
    return Document(name, text, tuple(pages), slides=True) if text else Skipped(name, "no text in presentation")


def _xml(deck: zipfile.ZipFile, part: str):
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)
    return etree.fromstring(deck.read(part), parser)


def _rels(deck: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """A part's relationships: id -> (type, target part name)."""
    folder, file = posixpath.split(part)
    rels = posixpath.join(folder, "_rels", file + ".rels")
    if rels not in deck.NameToInfo:
        return {}
    found = {}
    for rel in _xml(deck, rels).iter(_REL):
        if rel.get("TargetMode") == "External":
            continue
        target = rel.get("Target", "")
        path = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
        found[rel.get("Id")] = (rel.get("Type", ""), path)
    return found


def _slides(deck: zipfile.ZipFile) -> list[str]:
    """The slide parts in presentation order."""
    main = [path for kind, path in _rels(deck, "").values() if kind == _OFFICE_DOCUMENT]
    if not main:
        raise _BadDeck("no presentation part")
    rels = _rels(deck, main[0])
    ids = _xml(deck, main[0]).iter(f"{_P}sldId")
    return [rels[rid][1] for sid in ids if (rid := sid.get(f"{_R}id")) in rels]


def _slide_text(deck: zipfile.ZipFile, slide: str) -> str:
    tree = _xml(deck, slide)
    blocks = [t for shapes in tree.iter(f"{_P}spTree") for shape in shapes for t in _shape_text(shape)]
    del tree
    notes = [path for kind, path in _rels(deck, slide).values() if kind == _NOTES]
    if notes and (note := _notes_text(_xml(deck, notes[0]))):
        blocks.append(f"Notes: {note}")
    return "\n\n".join(blocks)


def _shape_text(shape) -> list[str]:
    """Text of a shape: a text frame's paragraphs, a table's rows (cells joined by " | "), a group's shapes."""
    if shape.tag == f"{_P}grpSp":
        return [t for child in shape for t in _shape_text(child)]
    if shape.tag == f"{_P}graphicFrame":
        rows = []
        for row in shape.iter(f"{_A}tr"):
            cells = ("\n".join(_paragraph(p) for p in cell.iter(f"{_A}p")).strip() for cell in row.iter(f"{_A}tc"))
            rows.append(" | ".join(c for c in cells if c))
        return ["\n".join(r for r in rows if r)] if any(rows) else []
    body = shape.find(f"{_P}txBody")
    if shape.tag != f"{_P}sp" or body is None:
        return []
    lines = [" ".join(_paragraph(p).split()) for p in body.iter(f"{_A}p")]
    text = "\n".join(line for line in lines if line)
    return [text] if text else []


def _paragraph(p) -> str:
    """A paragraph's text as python-pptx gives it: runs and fields, a line break as a vertical tab."""
    return "".join("\v" if child.tag == f"{_A}br" else "".join(child.itertext()) for child in p
                   if child.tag in (f"{_A}r", f"{_A}fld", f"{_A}br"))  # fmt: skip


def _notes_text(tree) -> str:
    """The text of a notes page's body placeholder (the speaker notes)."""
    for shape in tree.iter(f"{_P}sp"):
        placeholder = shape.find(f"{_P}nvSpPr/{_P}nvPr/{_P}ph")
        body = shape.find(f"{_P}txBody")
        if placeholder is not None and placeholder.get("type") == "body" and body is not None:
            return "\n".join(_paragraph(p) for p in body.iter(f"{_A}p")).strip()
    return ""
