"""Checks a draft's `[n]` markers against the passages and turns them into citations.

Markers that point at no passage are dropped; the rest are renumbered in order of first use so
that `Answer.citations` lists exactly the passages the text cites. Each citation quotes the
sentence(s) of its passage that the answer used: the generator's own quote when it knows it,
otherwise the passage sentence that shares most words with the answer sentence citing it.
"""

from __future__ import annotations

import re

from assistant.grounding.claims import MARKER, marker_numbers
from assistant.ingest.chunking import sentences
from assistant.schema import Answer, Citation, Draft, Passage, Unsupported
from assistant.terms import tokenize

# The one `[n]` citation marker pattern is `claims.MARKER` ("[2]", "[1, 3]", "[2-3]", "[passage 1]");
# group 1 holds the number(s) (read them with `marker_numbers`), and the match includes the space
# before the marker, which renumbering rewrites.


def build_answer(draft: Draft, passages: list[Passage], *, generator: str, warning: str | None = None) -> Answer:
    """Validate and renumber markers, attach citations with exact quotes."""
    if draft.abstained:
        return Answer(MARKER.sub("", draft.text).strip(), True, [], generator=generator, warning=warning)
    order: dict[int, int] = {}  # passage position -> citation number
    context: dict[int, str] = {}  # passage position -> answer sentence citing it first

    def first_use(n: int, m: re.Match) -> None:
        context.setdefault(n, _sentence_before(draft.text, m.start()))

    text = renumber_markers(draft.text, len(passages), order, on_cite=first_use).strip()
    citations = []
    short = draft.short if draft.short is not None and draft.short.passage in order else None
    for n, number in order.items():
        chunk = passages[n - 1].chunk
        quote = draft.quotes.get(n) or best_sentence(chunk.text, context[n])
        at = (short.start, short.end) if short is not None and short.passage == n else (None, None)
        where = chunk.start + max(0, chunk.text.find(quote))  # the quote's page, not the passage's first
        citations.append(
            Citation(
                n=number,
                source=chunk.source,
                text=chunk.text,
                quote=quote,
                start=chunk.start,
                end=chunk.end,
                page=chunk.page_at(where),
                score=passages[n - 1].score,
                answer_start=at[0],
                answer_end=at[1],
                ocr=chunk.ocr,
                section=chunk.section_at(where),
            )
        )
    unsupported = locate(draft.unsupported, text)
    return Answer(
        text,
        False,
        citations,
        generator=generator,
        warning=warning,
        unsupported=unsupported,
        short=short.text if short is not None else None,
    )


def locate(unsupported: tuple[Unsupported, ...], text: str) -> list[Unsupported]:
    """The unsupported sentences, located in the renumbered text (in order; each carries no marker)."""
    out, pos = [], 0
    for u in unsupported:
        at = text.find(u.text, pos)
        if at < 0:
            at = text.find(u.text)
        if at < 0:
            continue
        out.append(Unsupported(u.text, at, at + len(u.text), u.reason))
        pos = at + len(u.text)
    return out


def renumber_markers(text: str, n_passages: int, order: dict[int, int], on_cite=None) -> str:
    """Rewrite `[n]` markers by order of first use (`order` is updated); drop those out of range."""

    def replace(m: re.Match) -> str:
        numbers: list[int] = []
        for n in marker_numbers(m.group(1)):
            if 1 <= n <= n_passages:
                k = order.setdefault(n, len(order) + 1)
                if on_cite is not None:
                    on_cite(n, m)
                if k not in numbers:
                    numbers.append(k)
        return "".join(f" [{k}]" for k in numbers)

    return MARKER.sub(replace, text)


class MarkerRenumberer:
    """Renumbers the `[n]` markers of a streamed answer exactly as `build_answer` will.

    An LLM cites passages by their position ("[3]"); the finished answer renumbers them in order
    of first use and drops markers that point at no passage. Doing the same to each delta keeps
    the text a user watches stream in consistent with the sources listed under it. A trailing
    space or an unfinished "[1, " is held back until the next delta shows what it becomes.
    """

    _HELD = re.compile(r"\s*(?:\[[\w\s,;–-]{0,20})?\Z")  # "[2", "[1, ", "[passage 3", "[2-"

    def __init__(self, n_passages: int) -> None:
        self.n_passages = n_passages
        self.order: dict[int, int] = {}
        self._buffer = ""

    def feed(self, delta: str) -> str:
        """The part of the text so far that can be shown, renumbered."""
        self._buffer += delta
        held = self._HELD.search(self._buffer).start()
        ready, self._buffer = self._buffer[:held], self._buffer[held:]
        return renumber_markers(ready, self.n_passages, self.order)

    def flush(self) -> str:
        """Whatever was held back, at the end of the stream."""
        rest, self._buffer = self._buffer, ""
        return renumber_markers(rest, self.n_passages, self.order)


def best_sentence(passage: str, claim: str) -> str:
    """The passage sentence sharing most (stemmed) words with the claim; the first one if none do."""
    spans = sentences(passage) or []
    if not spans:
        return passage
    terms = set(tokenize(claim))
    best = max(spans, key=lambda s: len(terms & set(tokenize(passage[s.start : s.end]))))
    return passage[best.start : best.end]


def _sentence_before(text: str, pos: int) -> str:
    head = MARKER.sub("", text[:pos])
    return re.split(r"(?<=[.!?])\s+", head.strip())[-1] if head.strip() else text
