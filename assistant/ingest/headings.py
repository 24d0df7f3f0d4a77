"""Heading paths of a loaded text: which headings a passage sits under ("Methods › Data").

Loaders that know their headings (markdown `#` lines, html `h1`–`h6`, docx "Heading N" styles)
record them as `Heading`s; `sections` turns them into the `Section` spans a `Document` carries,
so a citation can say where in the document its quote is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from assistant.schema import Section

_MD_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_FENCE = re.compile(r"^ {0,3}(```|~~~)", re.MULTILINE)
_MAX_TITLE = 80
SEPARATOR = " › "


@dataclass(frozen=True)
class Heading:
    """A heading of the loaded text: its level (1 is the top) and title, starting at `start`."""

    level: int
    title: str
    start: int


def sections(headings: list[Heading], length: int) -> tuple[Section, ...]:
    """One span per heading, to the next heading, with the path of the headings above it."""
    stack: list[Heading] = []
    out: list[Section] = []
    ordered = sorted(headings, key=lambda h: h.start)
    for i, h in enumerate(ordered):
        while stack and stack[-1].level >= h.level:
            stack.pop()
        stack.append(h)
        end = ordered[i + 1].start if i + 1 < len(ordered) else length
        if end > h.start:
            out.append(Section(SEPARATOR.join(_short(x.title) for x in stack), h.start, end))
    return tuple(out)


def markdown_headings(text: str) -> list[Heading]:
    """ATX headings (`# Title`) outside fenced code blocks."""
    fences = [m.start() for m in _FENCE.finditer(text)]
    out = []
    for m in _MD_HEADING.finditer(text):
        if sum(1 for f in fences if f < m.start()) % 2:
            continue  # inside a code block
        out.append(Heading(len(m.group(1)), m.group(2).strip(), m.start()))
    return out


def _short(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= _MAX_TITLE else title[: _MAX_TITLE - 1] + "…"
