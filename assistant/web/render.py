"""HTML for the chat page: every string that comes from a document is escaped here.

Document text is data, never markup: everything that comes from a document (answer text
included, since it is made of document sentences) is HTML-escaped before it reaches the page,
and the chat renders no Markdown, so a `<script>` in a file shows as text.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from assistant.grounding.citations import MARKER
from assistant.schema import Answer, Citation, Unsupported
from assistant.web.service import ContextReader, DocumentInfo, SourceNames, Turn

CSS = """
:root { --quote-bg: #fef08a; --quote-fg: #1c1917; --exact-bg: #f59e0b; --exact-fg: #1c1917;
        --context-bg: rgba(250, 204, 21, 0.30); --warn-fg: #92400e; --focus: #f59e0b; }
.dark { --quote-bg: #713f12; --quote-fg: #fef9c3; --exact-bg: #c2410c; --exact-fg: #ffffff;
        --context-bg: rgba(250, 204, 21, 0.16); --warn-fg: #fcd34d; --focus: #fbbf24; }
#chat .message { font-size: 15px; line-height: 1.5; }
.cite { color: var(--color-accent); font-weight: 600; font-size: 0.8em; vertical-align: super; cursor: pointer; }
.cite:hover { text-decoration: underline; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.85em;
         background: #fde68a; color: #78350f; font-weight: 600; margin-right: 6px; }
.llm-warning { margin-top: 6px; font-size: 0.9em; color: var(--warn-fg); }
.source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px;
          margin-bottom: 10px; scroll-margin: 12px; }
.source.focused { border-color: var(--focus); box-shadow: 0 0 0 2px var(--focus); }
.source-head { display: flex; justify-content: space-between; gap: 8px; font-weight: 600; }
.source-score { font-weight: 400; opacity: 0.75; white-space: nowrap; }
.source-section { font-size: 0.85em; opacity: 0.8; }
.passage { white-space: pre-wrap; margin: 6px 0; font-size: 0.92em; }
.source mark, .viewer mark { background: var(--quote-bg); color: var(--quote-fg); padding: 0 1px; }
.source mark .exact, .viewer mark .exact { background: var(--exact-bg); color: var(--exact-fg); border-radius: 2px; }
.short-answer { font-weight: 700; }
.context { white-space: pre-wrap; font-size: 0.88em; opacity: 0.85; }
.context .passage-in-context { background: var(--context-bg); }
.open-source { margin-top: 4px; font-size: 0.85em; padding: 2px 10px; border-radius: 6px; cursor: pointer;
               border: 1px solid var(--border-color-primary); background: var(--background-fill-secondary);
               color: var(--body-text-color); }
.viewer { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px; margin-bottom: 10px;
          scroll-margin: 12px; }
.viewer-head { display: flex; justify-content: space-between; gap: 8px; font-weight: 600; margin-bottom: 6px; }
.viewer-close { cursor: pointer; border: none; background: none; color: var(--body-text-color); font-size: 1.1em; }
.viewer img { width: 100%; height: auto; border: 1px solid var(--border-color-primary); cursor: zoom-in; }
.viewer img.zoomed { position: fixed; top: 2vh; left: 50%; transform: translateX(-50%); width: auto;
                     height: 96vh; max-width: 98vw; z-index: 1000; cursor: zoom-out;
                     box-shadow: 0 0 0 100vmax rgba(0, 0, 0, 0.55); }
.viewer-text { white-space: pre-wrap; font-size: 0.9em; max-height: 60vh; overflow: auto; }
.muted { opacity: 0.7; }
.unsupported { opacity: 0.6; font-style: italic; }
.unsupported-label { font-style: normal; font-size: 0.75em; margin-left: 4px; padding: 0 6px;
                     border-radius: 8px; background: var(--background-fill-secondary); white-space: nowrap; }
table.docs { width: 100%; border-collapse: collapse; }
table.docs td, table.docs th { padding: 4px 8px; border-bottom: 1px solid var(--border-color-primary);
                               text-align: left; }
table.docs td.num { text-align: right; white-space: nowrap; }
#open-ref, #open-btn, #page-ready { display: none !important; }
.progress-line { margin: 4px 0; }
.progress-bar { height: 6px; border-radius: 3px; background: var(--background-fill-secondary); overflow: hidden; }
.progress-bar > div { height: 100%; background: var(--color-accent); }
@media (max-width: 640px) {  /* a phone: the chat, then the sources of its answers, then the rest */
  #chat { height: 50vh !important; min-height: 220px; max-height: 60vh; }
  #chat-col { order: 1; }
  #sources-col { order: 2; }
  #conversations-col { order: 3; }
}
"""


def printable(text: str) -> str:
    """Text that can be encoded for the page: a lone surrogate (half a UTF-16 pair) becomes "?"."""
    return text.encode("utf-8", "replace").decode("utf-8")


def render_text(text: str) -> str:
    """Escaped text with line breaks kept and `[n]` markers styled as citations."""
    escaped = html.escape(text).replace("\n", "<br>")

    def cite(m) -> str:
        space = " " if m.group(0)[:1].isspace() else ""
        return f'{space}<span class="cite">[{m.group(1)}]</span>'

    return MARKER.sub(cite, escaped)


def render_supported(text: str, unsupported: list[Unsupported]) -> str:
    """`render_text`, with each sentence no passage supports muted and labelled "not found in the sources"."""
    parts, pos = [], 0
    for u in sorted(unsupported, key=lambda u: u.start):
        if u.start < pos or text[u.start : u.end] != u.text:
            continue  # not where it says it is: shown as plain text rather than mislabelled
        parts.append(render_text(text[pos : u.start]))
        parts.append(
            f'<span class="unsupported" title="{html.escape(u.reason)}">{render_text(u.text)}'
            '<span class="unsupported-label">not found in the sources</span></span>'
        )
        pos = u.end
    parts.append(render_text(text[pos:]))
    return "".join(parts)


def render_answer(answer: Answer) -> str:
    """The chat bubble of a finished answer: a badge when declined, unsupported sentences muted and
    labelled, the LLM warning when there is one."""
    parts = ['<div class="answer-done">']  # marks a finished answer (streamed text has no wrapper)
    if answer.abstained:
        parts.append('<span class="badge">Not found in the documents</span>')
    if answer.short and answer.text.startswith(answer.short):  # the reader's exact words lead, in bold
        parts.append(f'<strong class="short-answer">{render_text(answer.short)}</strong>')
        parts.append(render_text(answer.text[len(answer.short) :]))
    else:
        parts.append(render_supported(answer.text, answer.unsupported))
    if answer.warning:
        parts.append(f'<div class="llm-warning">⚠ {html.escape(answer.warning)}</div>')
    return "".join(parts) + "</div>"


def render_error(message: str) -> str:
    return f'<div class="answer-done"><span class="badge">Cannot answer</span>{html.escape(message)}</div>'


def where(citation: Citation, show: Callable[[str], str] | None = None) -> str:
    """The file (and page or slide) of a citation as the page shows it; `show` maps a source to its shown name."""
    name = show(citation.source) if show else Path(citation.source).name or citation.source
    if citation.page is None:
        return name
    unit = "slide" if citation.source.lower().endswith(".pptx") else "page"
    return f"{name}, {unit} {citation.page}"


def exact_words(c: Citation) -> tuple[int, int] | None:
    """Where the short answer's words are in the passage, if this citation holds them."""
    return (c.answer_start, c.answer_end) if c.answer_start is not None and c.answer_end is not None else None


def highlight(passage: str, quote: str, exact: tuple[int, int] | None = None) -> str:
    """The escaped passage with the quoted sentence(s) in <mark>, and inside them the exact answer
    words (`exact`: their offsets in the passage) in <strong class="exact">."""
    i = passage.find(quote) if quote else -1
    if i < 0:
        return html.escape(passage)
    j = i + len(quote)
    inside = html.escape(passage[i:j])
    if exact is not None and i <= exact[0] < exact[1] <= j:
        a, b = exact[0] - i, exact[1] - i
        words = passage[i:j]
        inside = (
            f'{html.escape(words[:a])}<strong class="exact">{html.escape(words[a:b])}</strong>{html.escape(words[b:])}'
        )
    return f"{html.escape(passage[:i])}<mark>{inside}</mark>{html.escape(passage[j:])}"


def render_sources(
    answer: Answer | None,
    reader: ContextReader | None = None,
    show: Callable[[str], str] | None = None,
    *,
    turn: int | None = None,
    focus: int | None = None,
) -> str:
    """The sources panel: number, file (and page or slide, heading path), score, passage with the
    quote marked, context, and a button that opens the passage in its document.

    Args:
        answer: The answer whose citations to show (None: the empty panel).
        reader: Reads the text around each passage.
        show: Maps a source to the name clients see (default: the file name).
        turn: The answer's position in the conversation (what the open button names).
        focus: The citation number to bring forward (a clicked `[n]`).
    """
    if answer is None:
        return '<p class="muted">Ask a question: the passages the answer cites appear here.</p>'
    if answer.abstained or not answer.citations:
        return (
            '<p><span class="badge">Not found in the documents</span>'
            "No passage in the indexed documents answers this question.</p>"
        )
    reader = reader or ContextReader()
    cards = "".join(_source_card(c, reader, show, turn, c.n == focus) for c in answer.citations)
    return f'<div class="sources" data-turn="{"" if turn is None else turn}" data-focus="{focus or ""}">{cards}</div>'


def _source_card(
    c: Citation, reader: ContextReader, show: Callable[[str], str] | None, turn: int | None, focused: bool
) -> str:
    context = reader.around(c)
    more = ""
    if context:
        before, after = context
        more = (
            "<details><summary>Show surrounding text</summary>"
            f'<div class="context">{html.escape(before)}'
            f'<span class="passage-in-context">{html.escape(c.text)}</span>{html.escape(after)}</div>'
            "</details>"
        )
    section = f'<div class="source-section">{html.escape(c.section)}</div>' if c.section else ""
    button = (
        f'<button class="open-source" data-turn="{turn}" data-n="{c.n}">Open in document</button>'
        if turn is not None
        else ""
    )
    return (
        f'<div class="source{" focused" if focused else ""}" data-n="{c.n}">'
        f'<div class="source-head"><span>[{c.n}] {html.escape(where(c, show))}</span>'
        f'<span class="source-score">relevance {c.score:.2f}</span></div>{section}'
        f'<div class="passage">{highlight(c.text, c.quote, exact_words(c))}</div>{more}{button}</div>'
    )


def render_viewer(
    c: Citation,
    show: Callable[[str], str] | None = None,
    *,
    picture: bytes | None = None,
    context: tuple[str, str] | None = None,
    note: str = "",
) -> str:
    """A cited passage opened at its place: the page picture (PDF) or the passage in its document's text.

    Args:
        c: The citation opened.
        show: Maps a source to its shown name.
        picture: The rendered page (JPEG) with the quote marked, for a PDF.
        context: The document text before and after the passage, for other files.
        note: A line saying why the document cannot be shown (changed or gone).
    """
    import base64

    head = (
        f'<div class="viewer-head"><span>[{c.n}] {html.escape(where(c, show))}</span>'
        '<button class="viewer-close" title="Close">✕</button></div>'
    )
    section = f'<div class="source-section">{html.escape(c.section)}</div>' if c.section else ""
    if picture is not None:
        alt = html.escape(f"{where(c, show)} with the quoted sentence highlighted", quote=True)
        data = base64.b64encode(picture).decode()
        body = f'<img class="page-picture" alt="{alt}" src="data:image/jpeg;base64,{data}">'
    elif context is not None:
        before, after = context
        body = (
            f'<div class="viewer-text">{html.escape(before)}<span class="passage-in-context" id="viewer-passage">'
            f"{highlight(c.text, c.quote, exact_words(c))}</span>{html.escape(after)}</div>"
        )
    else:
        body = f'<div class="passage">{highlight(c.text, c.quote, exact_words(c))}</div>'
    extra = f'<p class="muted">{html.escape(note)}</p>' if note else ""
    return f'<div class="viewer" data-n="{c.n}">{head}{section}{extra}{body}</div>'


def render_documents(docs: list[DocumentInfo], names: SourceNames) -> str:
    """The Documents table: each document by its shown name (never its server path), its pages or
    slides, passages, size and the date it was added (an upload) or last changed (an indexed folder)."""
    if not docs:
        return '<p class="muted">No documents indexed yet.</p>'
    rows = "".join(
        f"<tr><td>{html.escape(names.show(d.source))}</td>"
        f'<td class="num">{f"{d.pages} {d.unit}" if d.pages else "–"}</td><td class="num">{d.passages}</td>'
        f'<td class="num">{_size(d.size)}</td><td class="num">{_date(d.added)}</td>'
        f'<td class="muted">{"uploaded" if names.is_upload(d.source) else "indexed folder"}</td></tr>'
        for d in docs
    )
    head = "<tr><th>Document</th><th>Pages</th><th>Passages</th><th>Size</th><th>Added</th><th>From</th></tr>"
    return f'<table class="docs">{head}{rows}</table>'


def _size(size: int | None) -> str:
    if size is None:
        return "–"
    for unit in ("bytes", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return "–"


def _date(when: float | None) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when)) if when is not None else "–"


def render_upload_status(done: list[str], refused: list[str]) -> str:
    """The upload result: one line per file, indexed or skipped with its reason."""
    lines = [f"<li>✔ {html.escape(d)}</li>" for d in done] + [f"<li>✘ skipped {html.escape(r)}</li>" for r in refused]
    return f"<ul>{''.join(lines)}</ul>"


def render_note(message: str, muted: bool = False) -> str:
    """A one-line note under a Documents control (escaped)."""
    return f"<p class='muted'>{html.escape(message)}</p>" if muted else f"<p>{html.escape(message)}</p>"


def render_messages(turns: list[Turn]) -> list[dict]:
    """The chat's messages for past turns: each question escaped, each answer as its rendered bubble."""
    out = []
    for t in turns:
        out.append({"role": "user", "content": html.escape(t.question)})
        out.append({"role": "assistant", "content": t.shown})
    return out
