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
from assistant.web.service import ContextReader, SourceNames, Turn

CSS = """
#chat .message { font-size: 15px; line-height: 1.5; }
.cite { color: var(--color-accent); font-weight: 600; font-size: 0.8em; vertical-align: super; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.85em;
         background: #fde68a; color: #78350f; font-weight: 600; margin-right: 6px; }
.llm-warning { margin-top: 6px; font-size: 0.9em; color: #92400e; }
.source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px;
          margin-bottom: 10px; }
.source-head { display: flex; justify-content: space-between; gap: 8px; font-weight: 600; }
.source-score { font-weight: 400; opacity: 0.75; white-space: nowrap; }
.passage { white-space: pre-wrap; margin: 6px 0; font-size: 0.92em; }
.passage mark { background: #fef08a; color: inherit; padding: 0 1px; }
.passage mark .exact { background: #fbbf24; border-radius: 2px; }
.short-answer { font-weight: 700; }
.context { white-space: pre-wrap; font-size: 0.88em; opacity: 0.85; }
.context .passage-in-context { background: rgba(254, 240, 138, 0.35); }
.muted { opacity: 0.7; }
.unsupported { opacity: 0.6; font-style: italic; }
.unsupported-label { font-style: normal; font-size: 0.75em; margin-left: 4px; padding: 0 6px;
                     border-radius: 8px; background: var(--background-fill-secondary); white-space: nowrap; }
table.docs { width: 100%; border-collapse: collapse; }
table.docs td, table.docs th { padding: 4px 8px; border-bottom: 1px solid var(--border-color-primary);
                               text-align: left; }
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
    """The file (and page) of a citation as the page shows it; `show` maps a source to its shown name."""
    name = show(citation.source) if show else Path(citation.source).name or citation.source
    return f"{name}, page {citation.page}" if citation.page is not None else name


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
    answer: Answer | None, reader: ContextReader | None = None, show: Callable[[str], str] | None = None
) -> str:
    """The sources panel: number, file (and page), score, passage with the quote marked, context.

    Args:
        answer: The answer whose citations to show (None: the empty panel).
        reader: Reads the text around each passage.
        show: Maps a source to the name clients see (default: the file name).
    """
    if answer is None:
        return '<p class="muted">Ask a question: the passages the answer cites appear here.</p>'
    if answer.abstained or not answer.citations:
        return (
            '<p><span class="badge">Not found in the documents</span>'
            "No passage in the indexed documents answers this question.</p>"
        )
    reader = reader or ContextReader()
    return "".join(_source_card(c, reader, show) for c in answer.citations)


def _source_card(c: Citation, reader: ContextReader, show: Callable[[str], str] | None) -> str:
    context = reader.around(c)
    exact = (c.answer_start, c.answer_end) if c.answer_start is not None and c.answer_end is not None else None
    more = ""
    if context:
        before, after = context
        more = (
            "<details><summary>Show surrounding text</summary>"
            f'<div class="context">{html.escape(before)}'
            f'<span class="passage-in-context">{html.escape(c.text)}</span>{html.escape(after)}</div>'
            "</details>"
        )
    return (
        f'<div class="source" data-n="{c.n}">'
        f'<div class="source-head"><span>[{c.n}] {html.escape(where(c, show))}</span>'
        f'<span class="source-score">relevance {c.score:.2f}</span></div>'
        f'<div class="passage">{highlight(c.text, c.quote, exact)}</div>{more}</div>'
    )


def render_documents(docs: dict[str, int], names: SourceNames) -> str:
    """The Documents table: each document by its shown name (never its server path), and its passages."""
    if not docs:
        return '<p class="muted">No documents indexed yet.</p>'
    rows = "".join(
        f"<tr><td>{html.escape(names.show(s))}</td><td>{n}</td>"
        f'<td class="muted">{"uploaded" if names.is_upload(s) else "indexed folder"}</td></tr>'
        for s, n in docs.items()
    )
    return f'<table class="docs"><tr><th>Document</th><th>Passages</th><th>From</th></tr>{rows}</table>'


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
