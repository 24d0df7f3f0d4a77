"""PowerPoint .pptx through python-pptx (MIT): each slide's text and notes, the slide number as the page."""

from __future__ import annotations

import io

from assistant.ingest.formats.office import not_ooxml
from assistant.schema import Document, PageSpan, Skipped


def load(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    """Slide text (titles, text boxes, tables, grouped shapes) then the speaker notes, one page per slide.

    Args:
        name: The source to record.
        data: The file's bytes.
        max_chars: More text than this is refused as a possible decompression bomb.
    """
    if reason := not_ooxml(data, ".pptx"):
        return Skipped(name, reason)
    from pptx import Presentation

    try:
        slides = [_slide_text(slide) for slide in Presentation(io.BytesIO(data)).slides]
    except Exception:  # zip, xml, package and key errors alike
        return Skipped(name, "not a valid .pptx file")
    parts: list[str] = []
    pages: list[PageSpan] = []
    at = 0
    for number, text in enumerate(slides, 1):
        if not text:
            continue
        if parts:
            at += 2  # the blank line between slides
        pages.append(PageSpan(number, at, at + len(text)))
        parts.append(text)
        at += len(text)
        if at > max_chars:
            return Skipped(name, f"expands to more than {max_chars:,} characters (possible decompression bomb)")
    text = "\n\n".join(parts)
    return Document(name, text, tuple(pages), slides=True) if text else Skipped(name, "no text in presentation")


def _slide_text(slide) -> str:
    blocks = [t for shape in slide.shapes for t in _shape_text(shape)]
    notes = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
    if notes is not None and (note := notes.text.strip()):
        blocks.append(f"Notes: {note}")
    return "\n\n".join(blocks)


def _shape_text(shape) -> list[str]:
    """Text of a shape: a text frame's paragraphs, a table's rows (cells joined by " | "), a group's shapes."""
    if shape.shape_type is not None and hasattr(shape, "shapes"):  # a group
        return [t for child in shape.shapes for t in _shape_text(child)]
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = [" | ".join(c.text.strip() for c in row.cells if c.text.strip()) for row in shape.table.rows]
        return ["\n".join(r for r in rows if r)] if any(rows) else []
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        lines = [" ".join(p.text.split()) for p in shape.text_frame.paragraphs]
        text = "\n".join(line for line in lines if line)
        return [text] if text else []
    return []
