"""From a page's characters to its printed lines, and the lines that are page furniture.

A line is the characters that share a baseline and sit close together, whatever order the content
stream drew them in. Superscript footnote marks inside a line are dropped ("QED,1 a" reads "QED,
a"), at the start of a footnote kept as its number ("1 QED stands for"). Running headers and
footers are short lines in the top or bottom tenth of pages that repeat (digits aside) across
pages; bare page numbers there go too.
"""

from __future__ import annotations

import heapq
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from assistant.ingest.formats.pdf.glyphs import Glyph, PageGlyphs

_BAND = 0.1  # top and bottom share of a page where running headers and footers live
_PAGE_NUMBER = re.compile(
    r"(?:page\s*)?[-–—(\[]?\s*(?:\d{1,4}|(?=[ivxlc]+\b)c{0,3}(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3}))\s*[-–—)\]]?"
    r"(?:\s*(?:of|/)\s*\d{1,4})?",
    re.IGNORECASE,
)
_MARKERS = frozenset("0123456789*∗†‡§¶#,")  # what a raised small run must be to count as a footnote mark


@dataclass(eq=False)
class Line:
    """A printed line: where it is (points, y upwards), its size (loose glyph height), its text."""

    page: int
    x0: float
    y0: float
    x1: float
    y1: float
    size: float
    text: str
    lead: float  # width of the first word: would it have fitted on the line above?
    words: tuple[WordBox, ...] = ()  # each word of `text` and its box, in order


@dataclass(frozen=True, slots=True)
class WordBox:
    """A word of a line's text and the box of its characters (points, y upwards)."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float


def page_lines(page: PageGlyphs) -> list[Line]:
    """The page's text lines: stream runs split where the pen jumps, merged along baselines."""
    runs: list[list[Glyph]] = []
    for g in page.glyphs:
        if runs and _continues(runs[-1][-1], g):
            runs[-1].append(g)
        else:
            runs.append([g])
    runs.sort(key=lambda r: -_centre(r))
    rows: list[list[list[Glyph]]] = []
    for run in runs:
        if rows and _overlap_y(rows[-1][0], run) >= 0.5 * min(_height(rows[-1][0]), _height(run)):
            rows[-1].append(run)
            rows[-1].sort(key=lambda r: -_height(r))  # the row's band is its tallest run
        else:
            rows.append([run])
    lines = []
    for row in rows:
        row.sort(key=lambda r: min(g.x0 for g in r))
        merged: list[list[list[Glyph]]] = [[row[0]]]
        for run in row[1:]:
            size = max(_size(merged[-1][-1]), _size(run))
            gap = min(g.x0 for g in run) - max(g.x1 for r in merged[-1] for g in r)
            if gap <= 0.6 * size:  # adjoining, or a mark written later inside the line
                merged[-1].append(run)
            else:
                merged.append([run])
        for parts in merged:
            # Interleave by position, each run in its own (stream) order: a ligature's letters share a box.
            glyphs = list(heapq.merge(*parts, key=lambda g: g.x0))
            if line := _make_line(page.number, glyphs):
                lines.append(line)
    return lines


def _continues(last: Glyph, g: Glyph) -> bool:
    """Whether `g` goes on the line that `last` is on (stream order, before baseline merging)."""
    if g.newline:
        return False
    size = max(last.height, g.height, 1e-3)
    overlap = min(last.y1, g.y1) - max(last.y0, g.y0)
    if overlap < 0.5 * min(last.height, g.height):
        return False
    # Not back before the previous glyph (a ligature's letters share its box), nor far ahead (a table cell).
    return g.x0 - last.x0 >= -0.5 * size and g.x0 - last.x1 <= 3 * size


def _make_line(page: int, glyphs: list[Glyph]) -> Line | None:
    size = _size(glyphs)
    full = [g for g in glyphs if g.height >= 0.85 * size]
    base = statistics.median(g.y0 for g in full) if full else glyphs[0].y0
    raised = [g.height < 0.85 * size and g.y0 > base + 0.2 * size and g.char in _MARKERS for g in glyphs]
    out: list[str] = []
    lead = None
    prev: Glyph | None = None
    words: list[list[Glyph]] = []
    for i, g in enumerate(glyphs):
        if raised[i]:
            if not out:  # a footnote's own number: "1 The footnote"
                out.append(g.char)
                words.append([g])
                if i + 1 < len(glyphs) and not raised[i + 1]:
                    out.append(" ")
                prev = g
                continue
            if prev is not None and not prev.char.isdigit():
                prev = g  # a footnote mark in running text: dropped, and no space for it
                continue
        if prev is not None and (g.space or g.x0 - prev.x1 > 0.25 * size) and out and out[-1] != " ":
            out.append(" ")
            if lead is None:
                lead = prev.x1 - glyphs[0].x0
        if not words or out[-1] == " ":
            words.append([])
        words[-1].append(g)
        out.append(g.char)
        prev = g
    text = "".join(out).strip()
    if not text or (not any(c.isalnum() for c in text) and len(text) < 2):
        return None
    x1 = max(g.x1 for g in glyphs)
    boxes = tuple(
        WordBox("".join(g.char for g in w), min(g.x0 for g in w), min(g.y0 for g in w), max(g.x1 for g in w),
                max(g.y1 for g in w))
        for w in words if w
    )  # fmt: skip
    return Line(page, glyphs[0].x0, min(g.y0 for g in glyphs), x1, max(g.y1 for g in glyphs), size, text,
                 lead if lead is not None else x1 - glyphs[0].x0, boxes)  # fmt: skip


def _size(glyphs: Iterable[Glyph]) -> float:
    glyphs = list(glyphs)
    heights = [g.height for g in glyphs if g.char.isalnum()] or [g.height for g in glyphs]
    return max(statistics.median(heights), 1e-3)


def _centre(run: list[Glyph]) -> float:
    return (min(g.y0 for g in run) + max(g.y1 for g in run)) / 2


def _height(run: list[Glyph]) -> float:
    return max(g.y1 for g in run) - min(g.y0 for g in run)


def _overlap_y(a: list[Glyph], b: list[Glyph]) -> float:
    return min(max(g.y1 for g in a), max(g.y1 for g in b)) - max(min(g.y0 for g in a), min(g.y0 for g in b))


def drop_furniture(lines: list[list[Line]], pages: list[PageGlyphs]) -> None:
    """Remove running headers and footers and bare page numbers from the top and bottom bands.

    A running header is the same text, numbers aside, at the same height on three pages or more,
    or on two when it stands apart from the text (a blank line or more away) or its number
    changes: a chapter's header repeats on a few pages only, while body text that happens to sit
    in the same spot twice (an example shown again in an appendix) is set close to its text.
    """
    found: dict[tuple, set[tuple[int, str]]] = {}
    marked: list[tuple[Line, tuple, bool]] = []
    for index, (page_lines, page) in enumerate(zip(lines, pages, strict=True)):
        for ln in page_lines:
            if _BAND * page.height <= ln.y1 and ln.y0 <= (1 - _BAND) * page.height:
                continue
            key = (round(ln.y0 / 3), re.sub(r"\d+", "#", " ".join(ln.text.lower().split())))
            found.setdefault(key, set()).add((index, ln.text))
            marked.append((ln, key, _apart(ln, page_lines)))

    def running(key: tuple, apart: bool) -> bool:
        seen = found[key]
        pages_seen = len({i for i, _ in seen})
        return pages_seen >= 3 or (pages_seen >= 2 and (apart or len({t for _, t in seen}) > 1))

    drop = {id(ln) for ln, key, apart in marked if running(key, apart) or _PAGE_NUMBER.fullmatch(ln.text)}
    for page_lines in lines:
        page_lines[:] = [ln for ln in page_lines if id(ln) not in drop]


def _apart(line: Line, page_lines: list[Line]) -> bool:
    """Whether a blank line or more separates `line` from every line above and below it."""
    gaps = [max(other.y0 - line.y1, line.y0 - other.y1) for other in page_lines if other is not line]
    gaps = [g for g in gaps if g > 0]  # lines on the same row (a page number beside it) aside
    return not gaps or min(gaps) > 1.5 * line.size
