"""Web pages (.html, .htm): the visible text, one line per block; e-books and mail bodies use it too."""

from __future__ import annotations

from assistant.ingest.formats.text import BINARY, decode
from assistant.ingest.headings import Heading, sections
from assistant.schema import Document, Skipped

# html: subtrees whose text is never shown, and elements that start a new line of text.
_INVISIBLE = ("script", "style", "noscript", "template", "head", "iframe", "object", "svg")
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
    "h4", "h5", "h6", "header", "hr", "html", "legend", "li", "main", "nav", "ol", "p", "pre",
    "section", "summary", "table", "tbody", "thead", "tfoot", "tr", "ul",
})  # fmt: skip
_CELLS = frozenset({"td", "th"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


def load(name: str, data: bytes, max_chars: int) -> Document | Skipped:
    """A page's visible text (scripts, styles and hidden elements left out)."""
    text = decode(data, html=True)
    if text is None:
        return Skipped(name, BINARY)
    headings: list[Heading] = []
    text = html_to_text(text, headings)
    if not text:
        return Skipped(name, "no visible text")
    return Document(name, text, sections=sections(headings, len(text)))


def html_to_text(html: str, headings: list[Heading] | None = None) -> str:
    """The visible text of an html page: one line per block element, whitespace collapsed.

    Table cells of a row stay on one line, separated by " | ", so a row reads as a fact.
    `headings`, when given, receives the h1–h6 lines (offsets into the returned text).
    """
    from bs4 import BeautifulSoup, Comment, NavigableString, Tag
    from bs4.element import Declaration, Doctype, ProcessingInstruction

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all([*_INVISIBLE]) + soup.find_all(hidden=True):
        if not tag.decomposed:
            tag.decompose()
    hidden_strings = (Comment, Declaration, Doctype, ProcessingInstruction)

    lines: list[str] = []
    words: list[str] = []
    block = cell = None
    at = 0

    def flush() -> None:
        nonlocal at
        if words:
            line = " ".join(words)
            if headings is not None and block is not None and block.name in _HEADINGS:
                headings.append(Heading(int(block.name[1]), line, at))
            lines.append(line)
            at += len(line) + 1
            words.clear()

    # Depth first with each node's block and cell carried down (not looked up through every parent
    # of every string: 10,000 nested elements made that 50 million steps).
    stack: list[tuple[object, Tag | None, Tag | None]] = [(soup, None, None)]
    while stack:
        node, node_block, node_cell = stack.pop()
        if isinstance(node, Tag):
            if node.name == "br":
                flush()
            if node.name in _BLOCKS:
                node_block, node_cell = node, None
            elif node.name in _CELLS:
                node_cell = node
            stack.extend((child, node_block, node_cell) for child in reversed(node.contents))
            continue
        if not isinstance(node, NavigableString) or isinstance(node, hidden_strings):
            continue
        parts = node.split()
        if not parts:
            continue
        if node_block is not block:
            flush()
        elif node_cell is not cell and words:
            words.append("|")
        block, cell = node_block, node_cell
        words.extend(parts)
    flush()
    return "\n".join(lines)
