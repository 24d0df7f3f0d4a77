"""The typed records that flow through the pipeline.

Every stage speaks in these types so that stages can be swapped (an LLM generator for the
extractive one, a Chroma server for the embedded store) without the others noticing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class PageSpan:
    """A page of a paginated source, as a character range of the loaded text."""

    page: int
    start: int
    end: int


@dataclass(frozen=True)
class TextBox:
    """Where `text[start:end]` of a document (a word) is on its page: shares of the page's width and
    height, origin top left, so it can be drawn on the page rendered at any size."""

    page: int
    start: int
    end: int
    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True)
class Section:
    """A heading's reach in a loaded text: `path` is the headings above it joined by " › "."""

    path: str
    start: int
    end: int


def section_at(sections: tuple[Section, ...], offset: int) -> str | None:
    """The heading path of the section that holds `offset` (None before the first heading)."""
    found = None
    for s in sections:
        if s.start <= offset:
            found = s.path if offset < s.end else found
        else:
            break
    return found


@dataclass(frozen=True)
class Document:
    """A loaded file.

    `text` is what chunk offsets point into. For .txt/.md it is the file's text unchanged; for
    html/pdf/docx it is the extracted visible text. `pages` is empty for unpaginated formats.
    `warnings` say what of the file could not be read (a PDF's undecodable font, say).
    `ocr_pages` are the pages whose text was read by OCR from their picture, and `boxes` where the
    words of those pages are on them.
    `sections` are heading paths (docx, html, markdown); `slides` says each page is a slide, kept
    as its own passage unless tiny.
    """

    source: str
    text: str
    pages: tuple[PageSpan, ...] = ()
    warnings: tuple[str, ...] = ()
    ocr_pages: tuple[int, ...] = ()
    boxes: tuple[TextBox, ...] = ()

    def boxes_between(self, start: int, end: int) -> list[TextBox]:
        """The word boxes of `text[start:end]` (of OCR'd pages), for highlighting it on its page."""
        return [b for b in self.boxes if b.start < end and b.end > start]

    sections: tuple[Section, ...] = ()
    slides: bool = False

    def page_at(self, offset: int) -> int | None:
        for span in self.pages:
            if span.start <= offset < span.end:
                return span.page
        return self.pages[-1].page if self.pages and offset >= self.pages[-1].end else None


@dataclass(frozen=True)
class Skipped:
    """A file that could not be used, and why, in words a user understands."""

    path: str
    reason: str


@dataclass(frozen=True)
class Chunk:
    """A passage of a document: `document.text[start:end] == text`.

    `page` is the page (or slide) it starts on; `pages` and `sections` are the document's page
    spans and heading paths clipped to the passage (document offsets), so a quote inside it can
    be located exactly (`page_at`, `section_at`).
    """

    id: str
    source: str
    text: str
    start: int
    end: int
    page: int | None = None
    ocr: bool = False  # its text was read by OCR from a picture of its page
    pages: tuple[PageSpan, ...] = ()
    sections: tuple[Section, ...] = ()

    def page_at(self, offset: int) -> int | None:
        """The page holding document offset `offset` (inside this passage); the start page if unknown."""
        for span in self.pages:
            if span.start <= offset < span.end:
                return span.page
        earlier = [span.page for span in self.pages if span.start <= offset]
        return earlier[-1] if earlier else self.page

    def section_at(self, offset: int) -> str | None:
        return section_at(self.sections, offset)


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its relevance score (higher is better, 0..1).

    `dense` is the raw cosine similarity and `keyword` the raw BM25 score, kept for deciding
    whether the evidence is strong enough to answer.
    """

    chunk: Chunk
    score: float
    dense: float = 0.0
    keyword: float = 0.0


@dataclass(frozen=True)
class Draft:
    """What a generator returns before citations are checked.

    `text` carries `[n]` markers that refer to the 1-based position of a passage in the list the
    generator was given. `quotes` maps such an `n` to the exact text of that passage the answer
    rests on, when the generator knows it (the extractive generator quotes sentences, a span reader
    its answer span; an LLM does not, and the closest sentence is found for it). `generator` names
    who wrote the draft when it is not the generator asked (a fallback), and `warning` says why.
    `unsupported` are the sentences of `text` no passage supports (found by the grounding check of
    an LLM's draft; located in `text`). `short` is the exact answer words a span reader found, and
    where (None when no reader answered).
    """

    text: str
    abstained: bool = False
    quotes: dict[int, str] = field(default_factory=dict)
    generator: str | None = None
    warning: str | None = None
    unsupported: tuple[Unsupported, ...] = ()
    short: ShortAnswer | None = None


@dataclass(frozen=True)
class ShortAnswer:
    """The exact words that answer a question: `passages[passage - 1].chunk.text[start:end] == text`."""

    text: str
    passage: int
    start: int
    end: int


@dataclass(frozen=True)
class Citation:
    """A passage an answer cites. `quote` is a substring of `text`; `start`/`end` locate `text`.

    `answer_start`/`answer_end` locate the short answer's exact words in `text` (inside `quote`)
    when this passage holds them, None otherwise. `ocr` says the passage was read by OCR from a
    picture of its page (a scan or a photo), so its words may be misread.
    when this passage holds them, None otherwise. `page` is the page (a .pptx's slide) the quote
    starts on; `section` the heading path above the quote (docx, html, markdown), if any.
    """

    n: int
    source: str
    text: str
    quote: str
    start: int
    end: int
    page: int | None
    score: float
    answer_start: int | None = None
    answer_end: int | None = None
    ocr: bool = False
    section: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Answer:
    """An answer with the passages it cites, numbered as the `[n]` markers in `text`.

    `unsupported` lists the sentences of `text` that no passage supports (an LLM's; they cite
    nothing), each located as `text[start:end]`. `short` is the exact answer words (the reader's;
    None when declined, when the reader found no span sure enough, or when an LLM answered); the
    citation that holds them locates them (`Citation.answer_start`).
    """

    text: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    generator: str = "reader"  # the default generator's name; `build_answer` always sets it
    warning: str | None = None
    unsupported: list[Unsupported] = field(default_factory=list)
    short: str | None = None

    def to_dict(self) -> dict:
        return {
            "answer": self.text,
            "short": self.short,
            "abstained": self.abstained,
            "citations": [c.to_dict() for c in self.citations],
            "generator": self.generator,
            "warning": self.warning,
            "unsupported": [u.to_dict() for u in self.unsupported],
        }

    def __str__(self) -> str:
        return "\n".join([self.text, *self._footer_lines()])

    def footer(self) -> str:
        """What `str()` prints under the text: the warning, if any, and the numbered sources."""
        return "\n".join(self._footer_lines()).lstrip("\n")

    def _footer_lines(self) -> list[str]:
        lines = []
        if self.warning:
            lines.append(f"(warning: {self.warning})")
        for u in self.unsupported:
            lines.append(f'(not found in the sources: "{u.text}")')
        if self.citations:
            lines.append("")
            lines.append("Sources:")
            for c in self.citations:
                where = f"{c.source}, page {c.page}" if c.page is not None else c.source
                where += " (OCR)" if c.ocr else ""
                lines.append(f"[{c.n}] {where} (score {c.score:.2f})")
                lines.append(f'    "{c.quote}"')
        return lines


@dataclass
class IndexReport:
    """The outcome of indexing: counts of files, total chunks in the index, skipped files."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0
    embedded: int = 0
    ocr_pages: int = 0  # pages whose text OCR read from their picture
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[Skipped] = field(default_factory=list)  # indexed, but part of the file was unreadable

    def to_dict(self) -> dict:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "ocr_pages": self.ocr_pages,
            "skipped": [asdict(s) for s in self.skipped],
            "warnings": [asdict(w) for w in self.warnings],
        }


@dataclass(frozen=True)
class IndexStamp:
    """What built an index, kept with it: vectors are only comparable with the same model's, and
    passages only match what the same chunker, cutting at the same size and overlap, would cut.

    `precision` (what documents were embedded in: float32, or bfloat16 on CPUs that compute it) is
    recorded, not enforced: the two give vectors within 0.996 cosine, so one index can be shared by
    machines of both kinds.
    """

    embedding_model: str
    dimension: int
    chunker_version: str
    chunk_tokens: int = 200
    chunk_overlap: int = 40
    # The build documents were embedded with (float32, int8, …); an index from before variants were
    # recorded was built in float32 (or bfloat16, within 0.996 cosine of it) and counts as float32.
    embedding_variant: str = "float32"

    ENFORCED = ("embedding_model", "dimension", "chunker_version", "chunk_tokens", "chunk_overlap", "embedding_variant")

    def describe(self) -> str:
        model = f"embedding model {self.embedding_model} ({self.dimension} dimensions, {self.embedding_variant})"
        chunker = f"chunker version {self.chunker_version} ({self.chunk_tokens} tokens, overlap {self.chunk_overlap})"
        return f"{model}, {chunker}"


@dataclass(frozen=True)
class WarmUp:
    """What `Assistant.warm_up` loaded, and what failed: part name → one line saying why."""

    loaded: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        """One line per failure, for a log or a terminal."""
        return [f"Warm-up: the {name} failed: {reason}" for name, reason in self.failed.items()]


@dataclass(frozen=True)
class Unsupported:
    """A sentence of an answer that no passage supports: `text[start:end]` of the answer text, and why."""

    text: str
    start: int
    end: int
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)
