"""Sentence-aware passages with exact character offsets, sized for the embedding model.

A chunk never exceeds the model's word-piece budget (the model would silently drop the rest),
paragraphs that fit are kept whole, and long paragraphs are cut at sentence ends with a small
overlap. Fragments without a letter or digit (stray symbols, rules) never start or form a chunk.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import TypeVar

import sentencex

from assistant.errors import InputError
from assistant.schema import Chunk, Document, PageSpan, Section

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_HAS_CONTENT = re.compile(r"\w")
# Where a line break inside a paragraph is a hard break, whatever the words say: before a list
# item, a markdown heading or a table row, and after a heading or a table row.
_STARTS_ITEM = re.compile(r"\s*(?:[-*+•●○■□▪◦‣–—>|#]|\d{1,3}[.)]\s|\(?[a-zA-Z][.)]\s|\([ivx]{1,4}\)\s)")
_ENDS_ITEM = re.compile(r"^\s*#|\|\s*$|\s\|\s")
_RUNS_ON = re.compile(r"[,;(\[/&\u2010-]$|(?:^|\s)(?:and|or|but|nor|of|to|the|a|an|in|on|at|for|with|by|from)$", re.I)
_WRAP_WIDTH = 120  # a line longer than this is a paragraph of its own (html, markdown), not a wrapped line
# Abbreviations before a number that the segmenter takes for a sentence end ("Approx. 20%", "Eq. 3").
_BEFORE_NUMBER = re.compile(
    r"\b(?:approx|ca|cf|eq|eqs|fig|figs|no|nos|nr|p|pp|sec|sect|tab|vol|ch|ref|refs|art|thm)\.$", re.IGNORECASE
)
# Lowercase words that sentencex reads as abbreviations (No., Me., Art.) unless a common word follows.
_WORD_END = re.compile(r"(?<![\w.])(?:no|me|art|may|etc)\.(?=\s+[A-Z])")
_ENUMERATION = re.compile(r"\(?(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})[.)]")
_CLOSING = "\"'”’)]}»"
_S = TypeVar("_S", PageSpan, Section)
TokenCounter = Callable[[list[str]], list[int]]
WordPieces = Callable[[list[str]], list[list[int]]]
_JOINS = frozenset(" \t\n\r")  # what may separate two pieces whose word pieces are joined (see `Passage`)
# Bump when a change to this module cuts the same text into other passages: an index keeps the
# version it was built with, and one built by another version is refused until rebuilt.
CHUNKER_VERSION = "2"  # 2: sentences by sentencex, not line breaks


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class Passage:
    """A chunk and, when the chunker was given the tokenizer's word pieces, the chunk's own: its
    sentences' pieces in turn, kept only where plain whitespace separates them (so tokenising the
    chunk text gives the same, see `Embedder.joins_word_pieces`), else None."""

    chunk: Chunk
    word_pieces: list[int] | None = None


def paragraphs(text: str) -> Iterator[Span]:
    """Blank-line separated blocks, trimmed of surrounding whitespace."""
    pos = 0
    for m in _PARAGRAPH_BREAK.finditer(text):
        yield from _trimmed(text, pos, m.start())
        pos = m.end()
    yield from _trimmed(text, pos, len(text))


def sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentence spans of `text[start:end]`: exact offsets, trimmed, without content-free fragments.

    Sentences are found by a maintained segmenter (sentencex, rule-based, with abbreviations
    and numbers handled per language), on language rather than line breaks: a blank line always
    ends a sentence, a single line break only where the line is not running on (a heading, a
    list item, a table row, a short line before a capitalised one), so wrapped text reads as one
    sentence and a title never merges with the paragraph under it.
    """
    end = len(text) if end is None else end
    spans: list[Span] = []
    for block in _blocks(text, start, end):
        spans.extend(_segment(text, block))
    return [s for s in spans if _HAS_CONTENT.search(text, s.start, s.end)]


def _blocks(text: str, start: int, end: int) -> Iterator[Span]:
    """Runs of lines that may share a sentence: paragraphs cut at hard line breaks."""
    pos = start
    for m in _PARAGRAPH_BREAK.finditer(text, start, end):
        yield from _line_runs(text, pos, m.start())
        pos = m.end()
    yield from _line_runs(text, pos, end)


def _line_runs(text: str, start: int, end: int) -> Iterator[Span]:
    if "\n" not in text[start:end]:
        yield Span(start, end)
        return
    lines, pos = [], start
    for line in text[start:end].split("\n"):
        lines.append(Span(pos, pos + len(line)))
        pos += len(line) + 1
    widths = [len(text[ln.start : ln.end].strip()) for ln in lines]
    wrap = max([w for w in widths if w <= _WRAP_WIDTH], default=0)
    run_start = start
    for i in range(len(lines) - 1):
        here, after = text[lines[i].start : lines[i].end].strip(), text[lines[i + 1].start : lines[i + 1].end]
        if not _soft_break(here, after, widths[i], wrap):
            yield Span(run_start, lines[i].end)
            run_start = lines[i + 1].start
    yield Span(run_start, end)


def _soft_break(line: str, following: str, width: int, wrap: int) -> bool:
    """Whether a single line break sits inside a sentence (text wrapped at a fixed width)."""
    if not line or not following.strip() or _ENDS_ITEM.search(line) or _STARTS_ITEM.match(following):
        return False
    if following.lstrip()[:1].islower() or _RUNS_ON.search(line):
        return True
    return width <= _WRAP_WIDTH and width >= 0.7 * wrap and wrap >= 40


def _segment(text: str, block: Span) -> list[Span]:
    """Sentences of one block, by sentencex, with its known slips repaired."""
    piece = text[block.start : block.end].replace("\n", " ")  # same length: offsets stay exact
    cuts = {block.start + b["end_index"] for b in sentencex.get_sentence_boundaries("en", piece)}
    cuts |= {m.end() for m in _WORD_END.finditer(text, block.start, block.end)}
    spans: list[Span] = []
    start = block.start
    for cut in sorted(cuts | {block.end}):
        while cut < block.end and text[cut] in _CLOSING and not text[cut - 1].isspace():
            cut += 1  # "(... the end.)" ends after the bracket
        span = next(_trimmed(text, start, cut), None)
        if span is None:
            continue
        if spans and _continues(text, spans[-1], span):
            spans[-1] = Span(spans[-1].start, span.end)
        else:
            spans.append(span)
        start = cut
    return spans


def _continues(text: str, previous: Span, current: Span) -> bool:
    """A cut the segmenter made inside a sentence: before a lowercase word, after a list number
    ("1. When ..."), or after an abbreviation before a number ("Eq. 3")."""
    first = text[current.start]
    if first.islower() or _ENUMERATION.fullmatch(text, previous.start, previous.end):
        return True
    return (first.isdigit() or first == "(") and bool(_BEFORE_NUMBER.search(text, previous.start, previous.end))


def _trimmed(text: str, start: int, end: int) -> Iterator[Span]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        yield Span(start, end)


def chunk_id(source: str, start: int, end: int, text: str) -> str:
    """Depends only on where the passage is and what it says, so re-indexing writes nothing new."""
    digest = hashlib.sha1(f"{source}\x00{start}\x00{end}\x00{text}".encode()).hexdigest()
    return digest[:24]


class Chunker:
    """Splits documents into passages of at most `max_tokens` word pieces.

    Args:
        count_tokens: Word pieces per text (the embedding model's own tokenizer).
        max_tokens: Budget per chunk, without the two special tokens the model adds.
        overlap_tokens: How much of the end of a cut paragraph is repeated at the next chunk's start.
        limit: The most word pieces the model reads (special tokens included); the budget must fit.
        word_pieces: The same tokenizer's piece ids per text; given, sentences are counted with it and
            `cut` hands each chunk's pieces on, so the model need not tokenise the chunk again.
    """

    def __init__(
        self,
        count_tokens: TokenCounter,
        max_tokens: int = 200,
        overlap_tokens: int = 40,
        *,
        limit: int,
        word_pieces: WordPieces | None = None,
    ):
        if not 16 <= max_tokens <= limit - 2:
            raise InputError(
                f"The chunk size must be between 16 and {limit - 2} word pieces (the model reads {limit})."
            )
        self.count_tokens = count_tokens
        self.word_pieces = word_pieces
        self.max_tokens = max_tokens
        self.overlap_tokens = max(0, min(overlap_tokens, max_tokens // 2))

    def split(self, document: Document) -> list[Chunk]:
        return [p.chunk for p in self.cut(document)]

    def cut(self, document: Document) -> list[Passage]:
        """The document's chunks, each with its word pieces where they are known (see `Passage`)."""
        text = document.text
        units = [s for p in paragraphs(text) for s in sentences(text, p.start, p.end)]
        if not units:
            return []
        counts, ids = self._measure([text[u.start : u.end] for u in units])
        # Split sentences that alone exceed the budget at word boundaries.
        pieces: list[tuple[Span, int, int]] = []  # (span, tokens, paragraph number)
        piece_ids: list[list[int] | None] = []
        paired = units_with_paragraph(text, units)
        if document.slides:  # a slide is a passage of its own: the slide number stands for the paragraph
            paired = ((u, document.page_at(u.start) or 0) for u, _ in paired)
        for (u, para), n, unit_ids in zip(paired, counts, ids, strict=True):
            if n <= self.max_tokens:
                pieces.append((u, n, para))
                piece_ids.append(unit_ids)
            else:
                windows = list(self._windows(text, u))
                window_counts, window_ids = self._measure([text[w.start : w.end] for w in windows])
                pieces += [(w, m, para) for w, m in zip(windows, window_counts, strict=True)]
                piece_ids += window_ids
        out = []
        for i, j in self._pack(pieces, hard=document.slides):
            chunk = self._make(document, pieces[i][0].start, pieces[j - 1][0].end)
            out.append(Passage(chunk, _joined(text, [p[0] for p in pieces[i:j]], piece_ids[i:j])))
        return out

    def _measure(self, texts: list[str]) -> tuple[list[int], list[list[int] | None]]:
        """Word pieces per text, and the pieces themselves where the chunker has the tokenizer's."""
        if self.word_pieces is None:
            return self.count_tokens(texts), [None] * len(texts)
        ids = self.word_pieces(texts)
        return [len(i) for i in ids], ids

    def _pack(self, pieces: list[tuple[Span, int, int]], hard: bool = False) -> list[tuple[int, int]]:
        """Greedy packing: whole paragraphs while they fit, sentence cuts with overlap otherwise.

        With `hard`, a paragraph change ends the passage unless what it holds so far is tiny
        (a title slide joins the slide after it). Returns each passage's range of pieces [i, j).
        """
        out: list[tuple[int, int]] = []
        tiny = 8  # word pieces: a slide with a title alone
        i = 0
        while i < len(pieces):
            total, j = 0, i
            while j < len(pieces) and total + pieces[j][1] <= self.max_tokens:
                if hard and j > i and pieces[j][2] != pieces[j - 1][2] and total >= tiny:
                    break
                total += pieces[j][1]
                j += 1
            j = max(j, i + 1)
            # Prefer ending at a paragraph boundary when this chunk spans more than one paragraph,
            # unless what precedes the cut paragraph is short (a heading belongs with its text).
            if j < len(pieces) and pieces[j][2] == pieces[j - 1][2] and pieces[i][2] != pieces[j - 1][2]:
                k = j - 1
                while k > i and pieces[k][2] == pieces[j][2]:
                    k -= 1
                if sum(n for _, n, _ in pieces[i : k + 1]) >= self.max_tokens // 2:
                    j = k + 1
            out.append((i, j))
            if j >= len(pieces):
                break
            # Overlap only when a paragraph was cut: repeat its last sentence(s) within budget.
            nxt = j
            if pieces[j][2] == pieces[j - 1][2] and self.overlap_tokens:
                back, k = 0, j - 1
                while k > i and back + pieces[k][1] <= self.overlap_tokens:
                    back += pieces[k][1]
                    k -= 1
                nxt = k + 1 if k + 1 < j else j
            i = nxt
        return out

    def _windows(self, text: str, span: Span) -> Iterator[Span]:
        """Cut an overlong sentence at word boundaries into pieces within budget."""
        words = [m.span() for m in re.finditer(r"\S+", text[span.start : span.end])]
        lo = 0
        while lo < len(words):
            hi = min(len(words), lo + max(1, self.max_tokens // 3))
            while hi < len(words):
                piece = text[span.start + words[lo][0] : span.start + words[hi][1]]
                if self.count_tokens([piece])[0] > self.max_tokens:
                    break
                hi += 1
            while hi > lo + 1:
                piece = text[span.start + words[lo][0] : span.start + words[hi - 1][1]]
                if self.count_tokens([piece])[0] <= self.max_tokens:
                    break
                hi -= 1
            start, end = span.start + words[lo][0], span.start + words[hi - 1][1]
            if hi == lo + 1 and self.count_tokens([text[start:end]])[0] > self.max_tokens:
                # One giant "word" (a hash, base64, a URL): each word piece covers at least a character.
                for s in range(start, end, self.max_tokens):
                    yield Span(s, min(end, s + self.max_tokens))
            else:
                yield Span(start, end)
            lo = hi

    @staticmethod
    def _make(document: Document, start: int, end: int) -> Chunk:
        text = document.text[start:end]
        return Chunk(
            id=chunk_id(document.source, start, end, text),
            source=document.source,
            text=text,
            start=start,
            end=end,
            page=document.page_at(start),
            ocr=bool(document.ocr_pages) and document.page_at(start) in document.ocr_pages,
            pages=_clip(document.pages, start, end) if len(document.pages) > 1 else (),
            sections=_clip(document.sections, start, end),
        )


def _joined(text: str, spans: list[Span], ids: list[list[int] | None]) -> list[int] | None:
    """The word pieces of the text from the first span to the last: the spans' own in turn, when
    each is known and only plain whitespace lies between them; else None (tokenise the text)."""
    if any(i is None for i in ids):
        return None
    for before, after in pairwise(spans):
        gap = text[before.end : after.start]
        if not gap or not _JOINS.issuperset(gap):
            return None
    return [t for i in ids for t in i]


def _clip(spans: tuple[_S, ...], start: int, end: int) -> tuple[_S, ...]:
    """The spans (pages or sections) that overlap [start, end), cut to it."""
    inside = (s for s in spans if s.start < end and s.end > start)
    return tuple(replace(s, start=max(s.start, start), end=min(s.end, end)) for s in inside)


def units_with_paragraph(text: str, units: list[Span]) -> Iterator[tuple[Span, int]]:
    """Pair each sentence with the number of the paragraph it belongs to."""
    bounds = [p.end for p in paragraphs(text)]
    para = 0
    for u in units:
        while para < len(bounds) - 1 and u.start >= bounds[para]:
            para += 1
        yield u, para
