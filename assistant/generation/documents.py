"""Questions about a document as a whole, answered from its record (see `ingest.records`).

"Who wrote the QED paper?", "What is it about?", "Summarise the presentation on evaluation",
"What sections does the handbook have?": no passage retrieved for such a question holds the
answer, but the document's record does, and every field of it is located in the text, so the
answer cites the passage that says it. A question is taken as one about a document only when
it names a document (its title, file name, an author, a distinctive phrase of the title) or points
at one ("it", "this paper") that the conversation or the scope settles; anything else goes to the
usual retrieval and reading.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from assistant.ingest.records import DocumentRecord, Located
from assistant.schema import Chunk, Draft, Passage, ShortAnswer

__all__ = ["DocumentAnswerer", "DocumentQuestion", "DocumentReply", "classify"]

_WHO = re.compile(
    r"^(?:and\s+|so\s+|but\s+)?(?:who|whom)\s+(?:(?:is|are|was|were)\s+)?(?:the\s+)?"
    r"(?P<verb>wrote|write|writes|written|authored|authors?|presented|presents|presenter|presenters|speaker|speakers|"
    r"gave|gives|created|prepared|made|delivered|composed|edited|editors?|published|creators?)\b"
    r"(?:\s+(?:of|by|for))?\s*(?P<mention>.*?)[?.!\s]*$",
    re.IGNORECASE,
)
_WHO_BY = re.compile(
    r"^(?:and\s+)?(?:who|whom)\s+(?:is|was|are|were)\s+(?P<mention>.+?)\s+(?P<verb>written|authored|presented|"
    r"created|prepared|made|given|delivered|edited|published)\s+by[?.!\s]*$",
    re.IGNORECASE,
)
_AUTHOR_OF = re.compile(
    r"^(?:and\s+)?(?:what\s+(?:is|are)\s+the\s+|name\s+the\s+|list\s+the\s+)?(?P<verb>authors?|presenters?|speakers?)"
    r"\s+of\s+(?P<mention>.+?)[?.!\s]*$",
    re.IGNORECASE,
)
_TITLE = re.compile(
    r"^(?:and\s+)?(?:what(?:'s|\s+is|\s+was)\s+(?:the\s+)?(?:title|name)\s+of\s+(?P<m1>.+?)"
    r"|what\s+(?:is|was)\s+(?P<m2>.+?)\s+(?:called|titled|named))[?.!\s]*$",
    re.IGNORECASE,
)
_DATE = re.compile(
    r"^(?:and\s+)?(?:when\s+(?:was|were|is|did)\s+(?P<m1>.+?)\s+(?:written|published|created|made|presented|released|"
    r"dated|given|issued|produced|come out|appear)"
    r"|what\s+(?:is\s+the\s+)?(?:date|year)\s+(?:of|is|was)\s+(?P<m2>.+?)(?:\s+(?:written|published|from|dated))?)"
    r"[?.!\s]*$",
    re.IGNORECASE,
)
_ABOUT = re.compile(
    r"^(?:and\s+|so\s+|ok(?:ay)?,?\s+|please\s+|can\s+you\s+|could\s+you\s+)*(?:"
    r"what(?:'s|\s+is|\s+are|\s+was)\s+(?P<m1>.+?)\s+(?:all\s+)?about"
    r"|(?:summari[sz]e|sum\s+up|give\s+(?:me\s+)?(?:an?\s+)?(?:short\s+|brief\s+|quick\s+)?(?:summary|overview|gist)\s+of"
    r"|(?:an?\s+)?(?:short\s+|brief\s+)?(?:summary|overview|gist)\s+of|tl;?dr\s+(?:of\s+)?|overview\s+of)\s+(?P<m2>.+?)"
    r"|what\s+(?:is|are|was)\s+the\s+(?:main\s+|key\s+)?(?:points?|ideas?|takeaways?|topics?|subject|purpose|"
    r"gist|point|aim|goal|message|thesis|findings?|contributions?)\s+of\s+(?P<m3>.+?)"
    r"|what\s+(?:does|do|did)\s+(?P<m4>.+?)\s+(?:say|cover|discuss|describe|present|propose|argue|talk about)"
    r")[?.!\s]*$",
    re.IGNORECASE,
)
_SECTIONS = re.compile(
    r"^(?:and\s+)?(?:what\s+(?:sections|chapters|parts|headings|slides|topics)\s+(?:does|do|are\s+in|are\s+there\s+in)\s+"
    r"(?P<m1>.+?)(?:\s+(?:have|contain|cover|include))?"
    r"|(?:what\s+is\s+)?the\s+(?:outline|structure|table\s+of\s+contents|contents)\s+of\s+(?P<m2>.+?)"
    r"|(?:show|list|give)\s+(?:me\s+)?(?:the\s+)?(?:sections|chapters|outline|headings)\s+of\s+(?P<m3>.+?)"
    r"|how\s+is\s+(?P<m4>.+?)\s+(?:organi[sz]ed|structured))[?.!\s]*$",
    re.IGNORECASE,
)
# Words that point at a document without naming it ("it", "this paper", "the presentation").
_POINTERS = re.compile(
    r"^(?:it|this|that|them|these|those|the\s+(?:document|file|text|paper|article|report|book|presentation|talk|"
    r"slides?|deck|session|handbook|manual|guide|email|e-mail|message|page|ordinance|thesis)"
    r"|(?:this|that)\s+(?:document|file|text|paper|article|report|book|presentation|talk|slides?|deck|session|handbook|"
    r"manual|guide|email|e-mail|message|page|ordinance|thesis)"
    r"|(?:the\s+)?(?:documents?|files?|uploads?)|(?:my|our)\s+(?:documents?|files?|uploads?))$",
    re.IGNORECASE,
)
_KIND_WORDS = {
    "paper": ("pdf", "docx", "txt", "md", "html", "htm"),
    "article": ("pdf", "docx", "html", "htm", "txt", "md"),
    "presentation": ("pptx", "pdf"),
    "talk": ("pptx", "pdf"),
    "slides": ("pptx", "pdf"),
    "slide": ("pptx", "pdf"),
    "deck": ("pptx", "pdf"),
    "session": ("pptx",),
    "book": ("epub", "pdf"),
    "email": ("eml",),
    "message": ("eml",),
    "spreadsheet": ("xlsx", "csv"),
}
_GENERIC = (
    "document file text paper article report book presentation talk slide slides deck session pdf docx pptx "
    "the a an this that on about of for"
)


@dataclass(frozen=True)
class DocumentQuestion:
    """A question about a whole document: what is asked (`kind`) and the words that name the document."""

    kind: str  # "author", "title", "date", "about" or "outline"
    mention: str
    verb: str = ""


@dataclass(frozen=True)
class DocumentReply:
    """A document question's draft and the passages its `[n]` markers refer to."""

    draft: Draft
    passages: list[Passage]
    source: str


def classify(question: str) -> DocumentQuestion | None:
    """What a question asks of a document as a whole, or None when it is not such a question."""
    q = " ".join(question.strip().split())
    for pattern in (_WHO_BY, _WHO, _AUTHOR_OF):
        if m := pattern.match(q):
            return DocumentQuestion("author", m.group("mention").strip(), m.group("verb").lower())
    for kind, pattern in (("title", _TITLE), ("date", _DATE), ("outline", _SECTIONS), ("about", _ABOUT)):
        if m := pattern.match(q):
            mention = next((v for k, v in m.groupdict().items() if v), "")
            return DocumentQuestion(kind, mention.strip())
    return None


def display_name(source: str) -> str:
    return PurePosixPath(source).name


class DocumentAnswerer:
    """Answers document questions from the records of the documents in scope.

    Args:
        tokenize: Turns text into the comparable word tokens (the keyword index's: stemmed, no stop words).
        chunk_at: Finds the stored passage of a source that holds a character range (start, end).
        overview_sentences: How many overview sentences an "about" answer quotes.
    """

    def __init__(
        self,
        tokenize: Callable[[str], list[str]],
        chunk_at: Callable[[str, int, int], Chunk | None],
        overview_sentences: int = 5,
    ):
        self.tokenize = tokenize
        self.chunk_at = chunk_at
        self.overview_sentences = overview_sentences
        self._generic = frozenset(tokenize(_GENERIC))

    def answer(
        self, question: str, records: Sequence[DocumentRecord], history: Sequence[tuple[str, str]] = ()
    ) -> DocumentReply | None:
        """The reply to a document question, or None when the question is not one (or names no document)."""
        asked = classify(question)
        if asked is None or not records:
            return None
        record, note = self.resolve(asked.mention, records, history)
        if record is None:
            return self._which(asked, records)
        return self._reply(asked, record, note)

    def _which(self, asked: DocumentQuestion, records: Sequence[DocumentRecord]) -> DocumentReply | None:
        """Ask which document is meant when the question points at one ("it") and several could be."""
        mention = " ".join(asked.mention.split())
        if mention and not _POINTERS.match(mention):
            return None  # it named something that is no document: the usual retrieval answers it
        kinds = _kinds(mention)
        pool = [r for r in records if not kinds or r.kind in kinds] or list(records)
        if len(pool) < 2:
            return None
        names = "; ".join(_name(r) for r in pool[:6]) + ("; …" if len(pool) > 6 else "")
        text = f"Which document do you mean? Name it in the question, or choose it: {names}."
        return DocumentReply(Draft(text), [], "")

    # -- which document --------------------------------------------------------------------------
    def resolve(
        self, mention: str, records: Sequence[DocumentRecord], history: Sequence[tuple[str, str]] = ()
    ) -> tuple[DocumentRecord | None, str]:
        """The document a mention means, and a note saying which was taken when several could be meant."""
        mention = " ".join(mention.split())
        pointer = not mention or bool(_POINTERS.match(mention))
        if pointer:
            kinds = _kinds(mention)
            pool = [r for r in records if not kinds or r.kind in kinds] or list(records)
            if len(pool) == 1:
                return pool[0], ""
            for q, a in reversed(list(history)):  # "it" after a turn about one document
                named = self._named(f"{q} {a}", pool, strict=False)
                if named:
                    return named[0][1], ""
            return None, ""
        named = self._named(mention, records, strict=True)
        if not named:
            return None, ""
        best = named[0]
        rivals = [r for s, r in named[1:] if s >= best[0] - 1e-6]
        note = ""
        if rivals:
            others = ", ".join(_name(r) for r in rivals[:3])
            note = f"Several documents match; this answer is about {_name(best[1])} (also: {others})."
        return best[1], note

    def _named(
        self, text: str, records: Sequence[DocumentRecord], *, strict: bool
    ) -> list[tuple[float, DocumentRecord]]:
        """Documents whose title, file name or authors the text names, best first (score: share of the
        mention's words that match, weighted by how few documents share them)."""
        words = [w for w in self.tokenize(text) if w not in self._generic]
        if not words:
            return []
        kinds = _kinds(text)
        names = {id(r): set(self._name_tokens(r)) for r in records}
        n = len(records)
        scored = []
        for r in records:
            mine = names[id(r)]
            hits = [w for w in set(words) if w in mine]
            if not hits:
                continue
            idf = {w: 1.0 + (n - sum(w in names[id(o)] for o in records)) / max(1, n) for w in set(words)}
            score = sum(idf[w] for w in hits) / sum(idf.values())
            if kinds and r.kind in kinds:
                score += 0.05
            if strict and (score < 0.5 or len(hits) < min(2, len(set(words)))):
                continue
            scored.append((score, r))
        scored.sort(key=lambda s: -s[0])
        return scored

    def _name_tokens(self, record: DocumentRecord) -> list[str]:
        stem = PurePosixPath(record.source).stem
        parts = [stem.replace("-", " ").replace("_", " ")]
        if record.title is not None:
            parts.append(record.title.text)
        parts += [a.text for a in record.authors]
        return self.tokenize(" ".join(parts))

    # -- the reply -------------------------------------------------------------------------------
    def _reply(self, asked: DocumentQuestion, record: DocumentRecord, note: str) -> DocumentReply | None:
        name = _name(record)
        cite = _Citer(self.chunk_at, record.source)
        if asked.kind == "author":
            if not record.authors:  # named, but it names no author: say so rather than quote whatever is near
                return _unsaid(f"{name} does not say who wrote or presented it.", record)
            marks = [cite.add(a) for a in record.authors]
            names = _join([a.text for a in record.authors])
            verb = "presented" if asked.verb.startswith(("present", "speaker", "gave", "deliver")) else "written"
            verb = "presented" if record.kind == "pptx" and verb == "written" and asked.verb != "wrote" else verb
            text = f"{name} was {verb} by {names} {_marks(marks)}"
        elif asked.kind == "title":
            if record.title is None:
                return None
            text = f"It is called “{record.title.text}” {_marks([cite.add(record.title)])}"
        elif asked.kind == "date":
            if record.date is None:
                return _unsaid(f"{name} does not say when it was written.", record)
            text = f"{name} is dated {record.date.text} {_marks([cite.add(record.date)])}"
        elif asked.kind == "outline":
            if not record.outline:
                return None
            heads = [h for h in record.outline if record.title is None or h.start != record.title.start][:15]
            items = [f"{h.text} {_marks([cite.add(h)])}" for h in heads]
            text = f"The sections of {name}: " + "; ".join(items) + "."
        else:
            sentences = list(record.overview[: self.overview_sentences])
            if not sentences:
                return None
            lead = "In summary" if record.overview_kind == "abstract" else "Its main points"
            body = " ".join(f"{s.text.strip()} {_marks([cite.add(s, group=True)])}" for s in sentences)
            text = f"{name} — {lead}: {body}"
        if not cite.passages:
            return None
        text = " ".join(text.split())
        if note:
            text = f"{text}\n\n({note})"
        short = None
        if asked.kind == "author" and len(record.authors) == 1:
            short = cite.short(record.authors[0])
        draft = Draft(text, quotes=dict(cite.quotes), short=short)
        return DocumentReply(draft, cite.passages, record.source)


def _unsaid(text: str, record: DocumentRecord) -> DocumentReply:
    """A decline that names what the document does not say (its record was read, the field is absent)."""
    return DocumentReply(Draft(text, abstained=True), [], record.source)


class _Citer:
    """Numbers the passages that hold a record's fields, one passage per stored chunk (its quote grows
    to cover every field cited from it)."""

    def __init__(self, chunk_at: Callable[[str, int, int], Chunk | None], source: str):
        self.chunk_at = chunk_at
        self.source = source
        self.passages: list[Passage] = []
        self.quotes: dict[int, str] = {}
        self._spans: dict[int, tuple[int, int]] = {}
        self._by_chunk: dict[str, int] = {}

    def add(self, field: Located, group: bool = False) -> int | None:
        chunk = self.chunk_at(self.source, field.start, field.end)
        if chunk is None:
            return None
        start = max(field.start, chunk.start)
        end = min(field.end, chunk.end)
        n = self._by_chunk.get(chunk.id)
        if n is None:
            self.passages.append(Passage(chunk, 1.0, dense=1.0, keyword=0.0))
            n = len(self.passages)
            self._by_chunk[chunk.id] = n
            self._spans[n] = (start, end)
        else:
            lo, hi = self._spans[n]
            self._spans[n] = (min(lo, start), max(hi, end))
        lo, hi = self._spans[n]
        self.quotes[n] = chunk.text[lo - chunk.start : hi - chunk.start]
        return n

    def short(self, field: Located) -> ShortAnswer | None:
        n = self._by_chunk.get(self.chunk_at(self.source, field.start, field.end).id) if self.passages else None
        if n is None:
            return None
        chunk = self.passages[n - 1].chunk
        if not (chunk.start <= field.start and field.end <= chunk.end):
            return None
        return ShortAnswer(field.text, n, field.start - chunk.start, field.end - chunk.start)


def _marks(numbers: list[int | None]) -> str:
    return "".join(f"[{n}]" for n in dict.fromkeys(n for n in numbers if n is not None))


def _join(names: list[str]) -> str:
    names = [" ".join(n.split()) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _name(record: DocumentRecord) -> str:
    file = display_name(record.source)
    if record.title is not None:
        return f"“{' '.join(record.title.text.split())}” ({file})"
    return file


def _kinds(text: str) -> tuple[str, ...]:
    for word, kinds in _KIND_WORDS.items():
        if re.search(rf"\b{word}\b", text, re.IGNORECASE):
            return kinds
    return ()
