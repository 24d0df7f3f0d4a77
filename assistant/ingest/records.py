"""A record per document, made once when it is indexed: title, authors, date, outline and overview.

People ask first about a file as a whole ("who wrote it?", "what is it about?"), and no single
passage answers that. So the record is computed at index time from the file's own properties (PDF
info and XMP, Office core properties, EPUB metadata, mail headers, HTML title and meta) and from its
first page (for a PDF, the title block is the largest type on page 1). Every field is kept only
where the document's text contains it, with its offsets there, so an answer can cite the passage
that says it. The overview is the abstract or summary section when there is one, else the
sentences most central to the whole (TF-IDF centrality: no model to run, a few milliseconds per
document), in document order.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from assistant.schema import Document

__all__ = ["DocumentRecord", "Located", "RecordBuilder"]

RECORD_VERSION = "1"


@dataclass(frozen=True)
class Located:
    """A piece of a document's text: `document.text[start:end] == text`; `origin` says where it was found."""

    text: str
    start: int
    end: int
    origin: str = "text"


@dataclass(frozen=True)
class DocumentRecord:
    """What a document is, as far as its own text says: every field is located in the text."""

    source: str
    title: Located | None = None
    authors: tuple[Located, ...] = ()
    date: Located | None = None
    outline: tuple[Located, ...] = ()
    overview: tuple[Located, ...] = ()
    overview_kind: str = ""  # "abstract" (the document's own summary section) or "central" (chosen sentences)
    kind: str = ""  # the file type ("pdf", "pptx", ...)
    version: str = RECORD_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> DocumentRecord | None:
        """The record stored with an index; None when missing or unreadable."""
        try:
            data = json.loads(raw)
            one = lambda v: Located(**v) if v else None  # noqa: E731
            many = lambda vs: tuple(Located(**v) for v in vs or ())  # noqa: E731
            return cls(
                source=str(data["source"]),
                title=one(data.get("title")),
                authors=many(data.get("authors")),
                date=one(data.get("date")),
                outline=many(data.get("outline")),
                overview=many(data.get("overview")),
                overview_kind=str(data.get("overview_kind", "")),
                kind=str(data.get("kind", "")),
                version=str(data.get("version", "")),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass
class Properties:
    """What a file says about itself, before it is checked against the text."""

    titles: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    title_block: list[str] = field(default_factory=list)  # a PDF's largest-type lines on page 1


_SECTION_NAMES = (
    "abstract|introduction|background|related work|method|methods|methodology|approach|experiments?|results|"
    "evaluation|discussion|conclusions?|future work|references|bibliography|acknowledge?ments?|appendix|summary|"
    "executive summary|overview|contents|table of contents|preface|foreword|limitations|analysis"
)
_HEADING = re.compile(
    rf"^(?:(?:\d+(?:\.\d+)*\.?|[IVX]+\.|[A-Z]\.)\s+[A-Z][^\n]{{1,80}}|(?:{_SECTION_NAMES})|#{{1,6}}\s+[^\n]{{2,80}}"
    rf"|(?:chapter|part|section)\s+[\w.]+[^\n]{{0,80}})$",
    re.IGNORECASE,
)
_SUMMARY_HEADING = re.compile(
    r"^(?:abstract|summary|executive summary|synopsis|overview|purpose)\s*[:.—–-]?\s*", re.IGNORECASE
)
_MARKS = re.compile(r"[∗*†‡§¶]+|(?<=[A-Za-z])\d+(?:,\d+)*")
_AFFILIATION = re.compile(
    r"universit|institut|college|school|department|dept\.|laborator|research|google|microsoft|inc\b|ltd|gmbh|"
    r"corporation|company|center|centre|@|http|www\.|\d{3}",
    re.IGNORECASE,
)
_NAME_WORD = re.compile(
    r"^(?:[A-Z][a-zà-ÿ'’\-]+|[A-Z]\.(?:-?[A-Z]\.)*|[A-Z][a-z]*[A-Z][a-z]+|de|da|van|von|der|del|la|le|di|du|bin|al)$"
)
_BYLINE = re.compile(r"^(?:by|authors?|written by|presented by|presenter|speaker|prepared by)\s*[:\-]?\s+(.+)$", re.I)
_SPLIT_NAMES = re.compile(r"\s*(?:,|;|&|\band\b|\n)\s*")
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_MONTH_ABBR = "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
_DATE = re.compile(
    rf"\b(?:(?:\d{{1,2}}\s+)?(?:{_MONTHS}|(?:{_MONTH_ABBR})\.?)\s+(?:\d{{1,2}},?\s+)?\d{{4}}|\d{{4}}-\d{{2}}-\d{{2}})\b",
    re.IGNORECASE,
)
_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")
_GENERIC_TITLES = re.compile(
    r"^(?:untitled|powerpoint presentation|slide \d+|presentation\d*|document\d*|microsoft (?:word|powerpoint) - .*|"
    r".*\.(?:docx?|pptx?|pdf|tex|dvi|txt))$",
    re.IGNORECASE,
)
_FIRST_PAGE_CHARS = 3000
_MAX_SENTENCES = 4000  # sentences weighed for a central overview (evenly sampled beyond this)
_OVERVIEW_SENTENCES = 5
_MAX_OUTLINE = 80


class RecordBuilder:
    """Builds a `DocumentRecord` from a loaded document and, when it came from a file, the file's bytes.

    Args:
        overview_sentences: How many sentences a central overview keeps.
    """

    def __init__(self, overview_sentences: int = _OVERVIEW_SENTENCES):
        self.overview_sentences = overview_sentences

    def build(self, document: Document, data: bytes | None = None, suffix: str = "") -> DocumentRecord:
        text = document.text
        suffix = (suffix or Path(document.source).suffix).lower()
        props = Properties()
        if data is not None:
            try:
                props = read_properties(data, suffix)
            except Exception:  # properties are a bonus: a file that loaded is recorded without them
                props = Properties()
        first = _first_page(document)
        title = self._title(text, first, props, suffix)
        authors = self._authors(text, first, props, title)
        date = self._date(text, first, props)
        outline = self._outline(document, suffix)
        overview, kind = self._overview(document, title, suffix)
        return DocumentRecord(
            source=document.source,
            title=title,
            authors=tuple(authors),
            date=date,
            outline=tuple(outline),
            overview=tuple(overview),
            overview_kind=kind,
            kind=suffix.lstrip("."),
        )

    # -- title ---------------------------------------------------------------------------------
    def _title(self, text: str, first: tuple[int, int], props: Properties, suffix: str) -> Located | None:
        lo, hi = first
        for candidate in props.titles:
            if _GENERIC_TITLES.match(candidate.strip()) or len(candidate.split()) < 1:
                continue
            found = locate(text, candidate, lo, hi, origin="properties") or locate(text, candidate, origin="properties")
            if found:
                return found
        if props.title_block:
            joined = " ".join(props.title_block)
            if found := locate(text, joined, lo, hi, origin="first page") or locate(
                text, props.title_block[0], lo, hi, origin="first page"
            ):
                return found
        # The first paragraph of the first page, when it reads as a title rather than a sentence.
        for para in _paragraphs(text, lo, hi)[:1]:
            words = para.text.split()
            titled = (
                1 <= len(words) <= 20 and not para.text.rstrip().endswith((".", ",", ";")) and "\n" not in para.text
            )
            titled = titled and len(re.findall(r"[^\W\d_]", para.text)) >= 3  # "×" or "12" is no title
            if titled and not para.text.lower().startswith(("notes:", "from:", "subject:", "date:", "to:")):
                bare = para.text.lstrip("#").strip()  # a Markdown heading's marks are not its title
                at = para.start + para.text.index(bare) if bare else para.start
                return Located(bare or para.text, at, at + len(bare or para.text), "first page")
        return None

    # -- authors -------------------------------------------------------------------------------
    def _authors(self, text: str, first: tuple[int, int], props: Properties, title: Located | None) -> list[Located]:
        lo, hi = first
        found: list[Located] = []
        for raw in props.authors:
            for name in _SPLIT_NAMES.split(raw):
                name = name.strip()
                if not _looks_like_name(name):
                    continue
                if at := locate(text, name, lo, hi, "properties") or locate(text, name, origin="properties"):
                    found.append(at)
        start = title.end if title is not None and title.end <= hi else lo
        for para in _paragraphs(text, start, hi)[:4]:
            line = para.text
            if m := _BYLINE.match(line):
                line_names = m.group(1)
                offset = para.start + m.start(1)
            elif title is not None and para.start >= title.end:
                line_names, offset = line, para.start
            else:
                continue
            names = _names_in(line_names, offset, text)
            if names:
                found.extend(names)
            elif found and len(line.split()) > 3:
                break
        seen: set[str] = set()
        out = []
        for a in sorted(found, key=lambda a: a.start):
            key = " ".join(a.text.lower().split())
            if key not in seen and not any(key in s or s in key for s in seen):
                seen.add(key)
                out.append(a)
        return out[:20]

    # -- date ----------------------------------------------------------------------------------
    def _date(self, text: str, first: tuple[int, int], props: Properties) -> Located | None:
        lo, hi = first
        years = [m.group(1) for d in props.dates if (m := _YEAR.search(d))]
        dates = list(_DATE.finditer(text, lo, hi))
        for year in years:  # a date on the first page in the year the file says
            for m in dates:
                if year in m.group(0):
                    return Located(m.group(0), m.start(), m.end(), "properties")
        if dates:
            m = dates[0]
            return Located(m.group(0), m.start(), m.end(), "first page")
        for year in years:
            if m := re.search(rf"\b{year}\b", text[lo:hi]):
                return Located(year, lo + m.start(), lo + m.end(), "properties")
        return None

    # -- outline -------------------------------------------------------------------------------
    def _outline(self, document: Document, suffix: str) -> list[Located]:
        text = document.text
        out: list[Located] = []
        if suffix == ".pptx" and document.pages:  # each slide's first line is its title
            for page in document.pages:
                paras = _paragraphs(text, page.start, page.end)
                if paras:
                    p = paras[0]
                    line = p.text.split("\n")[0]
                    titled = (
                        1 <= len(line.split()) <= 14 and not line.lower().startswith("notes:") and not line.isdigit()
                    )
                    if titled and (not out or out[-1].text != line):
                        out.append(Located(line, p.start, p.start + len(line), "slide title"))
            return out[:_MAX_OUTLINE]
        for m in re.finditer(r"^[^\n]{2,90}$", text, re.MULTILINE):
            line = m.group(0).strip()
            if _HEADING.match(line) and len(line.split()) <= 12 and not line.endswith((".", ",", ";")):
                if re.search(r"@|https?:|www\.", line) or (m.start() < 3000 and _AFFILIATION.search(line)):
                    continue  # an affiliation or a footnote's link, not a section
                start = m.start() + m.group(0).index(line)
                out.append(Located(line, start, start + len(line), "heading"))
                if len(out) >= _MAX_OUTLINE:
                    break
        return out

    # -- overview ------------------------------------------------------------------------------
    def _overview(self, document: Document, title: Located | None, suffix: str) -> tuple[list[Located], str]:
        text = document.text
        slides = document.pages if suffix == ".pptx" else ()
        if found := _summary_section(text, slides):
            return found, "abstract"
        return self._central(text, title), "central" if text.strip() else ""

    def _central(self, text: str, title: Located | None) -> list[Located]:
        from assistant.ingest.chunking import sentences
        from assistant.terms import tokenize_many

        spans = [s for s in sentences(text) if 6 <= len(text[s.start : s.end].split()) <= 60]
        captions = ("notes:", "figure", "table", "fig.")
        spans = [s for s in spans if not text[s.start : s.end].lower().startswith(captions)]
        if not spans:
            return []
        if len(spans) > _MAX_SENTENCES:
            keep = np.linspace(0, len(spans) - 1, _MAX_SENTENCES).astype(int)
            spans = [spans[i] for i in keep]
        tokens = tokenize_many([text[s.start : s.end] for s in spans])
        # TF-IDF rows as (row, term, weight) triples in row order: plain numpy, since a document
        # has few sentences and sparse-matrix overhead per call was most of indexing's own CPU time.
        vocab: dict[str, int] = {}
        rows, cols = [], []
        for r, toks in enumerate(tokens):
            for t in set(toks):
                rows.append(r)
                cols.append(vocab.setdefault(t, len(vocab)))
        if not vocab:
            return []
        n, rows, cols = len(spans), np.asarray(rows), np.asarray(cols)
        df = np.bincount(cols, minlength=len(vocab))
        weights = (np.log((1 + n) / (1 + df)) + 1.0)[cols]
        weights /= (np.sqrt(np.bincount(rows, weights=weights * weights, minlength=n)) + 1e-9)[rows]
        centroid = np.bincount(cols, weights=weights, minlength=len(vocab)) / n
        if title is not None:  # the title says what the document is about: weigh its words in
            for t in tokenize_many([title.text])[0]:
                if t in vocab:
                    centroid[vocab[t]] += 1.0 / max(1, len(title.text.split()))
        score = np.bincount(rows, weights=weights * centroid[cols], minlength=n)
        position = np.array([s.start / max(1, len(text)) for s in spans])
        score = score * (1.0 + 0.3 * (position < 0.1))  # what comes first tends to say what it is
        bounds = np.searchsorted(rows, np.arange(n + 1))
        chosen: list[int] = []
        seen = np.zeros((self.overview_sentences, len(vocab)))  # the chosen sentences' rows
        for i in np.argsort(-score):
            if len(chosen) >= self.overview_sentences:
                break
            terms, w = cols[bounds[i] : bounds[i + 1]], weights[bounds[i] : bounds[i + 1]]
            if len(chosen) and float(np.max(seen[: len(chosen), terms] @ w)) > 0.5:
                continue  # the same thing said twice
            seen[len(chosen), terms] = w
            chosen.append(int(i))
        picked = [spans[i] for i in sorted(chosen)]
        return [Located(text[s.start : s.end], s.start, s.end, "central") for s in picked]


# -- reading properties ------------------------------------------------------------------------
def read_properties(data: bytes, suffix: str) -> Properties:
    """Title, authors and dates a file states about itself (unchecked)."""
    if suffix == ".pdf":
        return _pdf_properties(data)
    if suffix in (".docx", ".pptx", ".xlsx"):
        return _office_properties(data)
    if suffix == ".epub":
        return _epub_properties(data)
    if suffix == ".eml":
        return _mail_properties(data)
    if suffix in (".html", ".htm"):
        return _html_properties(data)
    return Properties()


def _pdf_properties(data: bytes) -> Properties:
    from assistant.ingest.formats.pdf.glyphs import read_properties as pdf_read
    from assistant.ingest.formats.pdf.lines import page_lines

    info, pages = pdf_read(data, pages=1)
    props = Properties(
        titles=[info["Title"]] if info.get("Title") else [],
        authors=[info["Author"]] if info.get("Author") else [],
        dates=[info[k] for k in ("CreationDate", "ModDate") if info.get(k)],
    )
    if not props.titles or not props.authors:
        _xmp(data, props)
    if pages:
        props.title_block = _title_block(page_lines(pages[0]), pages[0].height)
    return props


def _xmp(data: bytes, props: Properties) -> None:
    """Dublin Core title and creators from the PDF's XMP packet (found by its markers, no full parse)."""
    at = data.find(b"<x:xmpmeta")
    end = data.find(b"</x:xmpmeta>", at)
    if at < 0 or end < 0:
        return
    try:
        root = ElementTree.fromstring(data[at : end + len(b"</x:xmpmeta>")])
    except ElementTree.ParseError:
        return
    dc = "{http://purl.org/dc/elements/1.1/}"
    for tag, target in (("title", props.titles), ("creator", props.authors)):
        for el in root.iter(f"{dc}{tag}"):
            target += [li.text.strip() for li in el.iter() if li.tag.endswith("}li") and li.text and li.text.strip()]


def _title_block(lines, height: float) -> list[str]:
    """The largest type in the upper part of page 1, as consecutive lines (a title set in big letters)."""
    upper = [line for line in lines if line.y1 >= 0.35 * height and len(line.text) >= 3]
    if len(upper) < 2:
        return []
    sizes = sorted(line.size for line in upper)
    body = sizes[len(sizes) // 2]
    top = max(sizes)
    if top < 1.15 * body:
        return []
    block = [line for line in upper if line.size >= 0.92 * top]
    block.sort(key=lambda line: -line.y1)
    words = sum(len(line.text.split()) for line in block)
    if not block or words > 30 or len(block) > 4:
        return []
    return [line.text for line in block]


def _office_properties(data: bytes) -> Properties:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        try:
            root = ElementTree.fromstring(z.read("docProps/core.xml")[:200_000])
        except KeyError:
            return Properties()
    dc, terms = "{http://purl.org/dc/elements/1.1/}", "{http://purl.org/dc/terms/}"
    get = lambda tag: [el.text.strip() for el in root.iter(tag) if el.text and el.text.strip()]  # noqa: E731
    return Properties(titles=get(f"{dc}title"), authors=get(f"{dc}creator"), dates=get(f"{terms}created"))


def _epub_properties(data: bytes) -> Properties:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        container = ElementTree.fromstring(z.read("META-INF/container.xml")[:200_000])
        opf = next((el.get("full-path") for el in container.iter() if el.tag.endswith("rootfile")), None)
        if not opf:
            return Properties()
        root = ElementTree.fromstring(z.read(opf)[:2_000_000])
    dc = "{http://purl.org/dc/elements/1.1/}"
    get = lambda tag: [el.text.strip() for el in root.iter(f"{dc}{tag}") if el.text and el.text.strip()]  # noqa: E731
    return Properties(titles=get("title"), authors=get("creator"), dates=get("date"))


def _mail_properties(data: bytes) -> Properties:
    from email import policy
    from email.parser import BytesParser
    from email.utils import getaddresses

    msg = BytesParser(policy=policy.default).parsebytes(data, headersonly=True)
    names = [n or a for n, a in getaddresses([str(msg.get("From", ""))]) if n or a]
    return Properties(
        titles=[str(msg["Subject"])] if msg.get("Subject") else [],
        authors=names,
        dates=[str(msg["Date"])] if msg.get("Date") else [],
    )


def _html_properties(data: bytes) -> Properties:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data[:2_000_000], "html.parser")
    props = Properties()
    if soup.title and soup.title.string and soup.title.string.strip():
        props.titles.append(soup.title.string.strip())
    for meta in soup.find_all("meta"):
        key = (meta.get("name") or meta.get("property") or "").lower()
        value = (meta.get("content") or "").strip()
        if not value:
            continue
        if key in ("author", "dc.creator", "citation_author", "article:author"):
            props.authors.append(value)
        elif key in ("og:title", "dc.title", "citation_title"):
            props.titles.append(value)
        elif key in ("date", "dc.date", "citation_date", "article:published_time", "citation_publication_date"):
            props.dates.append(value)
    for h1 in soup.find_all("h1")[:1]:
        if text := h1.get_text(" ", strip=True):
            props.titles.append(text)
    return props


# -- locating in the text ----------------------------------------------------------------------
def locate(text: str, phrase: str, lo: int = 0, hi: int | None = None, origin: str = "text") -> Located | None:
    """Where `phrase` occurs in `text[lo:hi]`, whatever the spacing and case; None when it does not."""
    words = [re.escape(w) for w in _MARKS.sub(" ", phrase).split() if w.strip()]
    if not words or len(phrase) > 2000:
        return None
    pattern = r"\b" if words[0][0].isalnum() else ""
    pattern += r"(?:\s+|\s*[-‐]\s*|[∗*†‡§¶\d,]*\s+)".join(words)
    pattern += r"\b" if words[-1][-1].isalnum() else ""
    m = re.compile(pattern, re.IGNORECASE).search(text, lo, len(text) if hi is None else hi)
    if m is None:
        return None
    return Located(m.group(0), m.start(), m.end(), origin)


@dataclass(frozen=True)
class _Para:
    text: str
    start: int
    end: int


def _paragraphs(text: str, lo: int, hi: int) -> list[_Para]:
    out = []
    for m in re.finditer(r"[^\n](?:.|\n(?!\s*\n))*", text[lo:hi]):
        raw = m.group(0)
        stripped = raw.strip()
        if stripped:
            start = lo + m.start() + raw.index(stripped)
            out.append(_Para(stripped, start, start + len(stripped)))
    return out


def _first_page(document: Document) -> tuple[int, int]:
    if document.pages:
        page = document.pages[0]
        return page.start, max(page.end, min(len(document.text), page.start + 400))
    return 0, min(len(document.text), _FIRST_PAGE_CHARS)


def _looks_like_name(name: str) -> bool:
    words = _MARKS.sub(" ", name).split()
    if not 2 <= len(words) <= 5 or _AFFILIATION.search(name):
        return False
    return all(_NAME_WORD.match(w) for w in words) and any(len(w) > 2 and w[0].isupper() for w in words)


def _names_in(line: str, offset: int, text: str) -> list[Located]:
    """The people a byline names ("A. Author∗, B. Author and C. Author"), each located; [] if it is not a byline."""
    if _AFFILIATION.search(line) or len(line) > 400:
        return []
    out = []
    pieces = [p for p in _SPLIT_NAMES.split(_MARKS.sub(" ", line)) if p.strip()]
    if not pieces:
        return []
    for piece in pieces:
        name = " ".join(piece.split())
        if _looks_like_name(name) and (at := locate(text, name, offset, offset + len(line) + 20, "first page")):
            out.append(at)
    return out if len(out) >= max(1, (len(pieces) + 1) // 2) else []


def _summary_section(text: str, slides=()) -> list[Located]:
    """The sentences of an abstract or summary near the start, when the document has one (on a slide
    deck, the rest of the slide that names it)."""
    from assistant.ingest.chunking import sentences

    limit = max(6000, len(text) // 8)
    for m in re.finditer(r"^[^\n]{0,40}$", text[:limit], re.MULTILINE):
        head = _SUMMARY_HEADING.match(m.group(0).strip())
        if not head or head.end() != len(m.group(0).strip()):
            continue
        # The section: the paragraphs after the heading up to the next heading.
        start = m.end()
        end = start
        stop = min(len(text), start + 3000)
        for page in slides:
            if page.start <= m.start() < page.end:
                stop = page.end
        for para in _paragraphs(text, start, stop):
            if end > start and (_HEADING.match(para.text) and len(para.text.split()) <= 12):
                break
            end = para.end
            if end - start > 1800:
                break
        spans = [s for s in sentences(text, start, end) if len(text[s.start : s.end].split()) >= 6]
        spans = [
            s for s in spans if not text[s.start : s.end].rstrip().endswith("?")
        ]  # a list of questions is an outline
        words = sum(len(text[s.start : s.end].split()) for s in spans)
        if spans and ((words >= 40 and len(spans) >= 2) or (slides and words >= 20)):
            return [Located(text[s.start : s.end], s.start, s.end, "abstract") for s in spans[:8]]
    return []
