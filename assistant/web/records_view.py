"""What the page shows of each document's record: its fields in the Documents tab, and example
questions drawn from the user's own documents (titles, authors) once there are any.

Everything a document says is escaped: record fields are document text.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from assistant.ingest.records import DocumentRecord

__all__ = ["example_questions", "render_records"]


def render_records(records: Sequence[DocumentRecord], show: Callable[[str], str]) -> str:
    """Each document's title, authors, date, outline size and the start of its overview, as an HTML list."""
    if not records:
        return ""
    items = []
    for r in records:
        rows = [f"<b>{_e(show(r.source))}</b>"]
        if r.title is not None:
            rows.append(f"title: {_e(r.title.text)}")
        if r.authors:
            rows.append("by: " + _e(", ".join(a.text for a in r.authors)))
        if r.date is not None:
            rows.append(f"date: {_e(r.date.text)}")
        if r.outline:
            heads = "; ".join(h.text for h in r.outline[:6]) + ("; …" if len(r.outline) > 6 else "")
            rows.append(f"sections ({len(r.outline)}): {_e(heads)}")
        if r.overview:
            first = " ".join(r.overview[0].text.split())
            label = "abstract" if r.overview_kind == "abstract" else "overview"
            rows.append(f"{label}: {_e(first[:240])}{'…' if len(first) > 240 else ''}")
        items.append("<li>" + "<br>".join(rows) + "</li>")
    return f'<details class="records" open><summary>About each document</summary><ul>{"".join(items)}</ul></details>'


def example_questions(
    records: Sequence[DocumentRecord], defaults: Sequence[str], seeds_dir: str | Path | None = None, limit: int = 4
) -> list[str]:
    """Questions about the user's own documents (the bundled seeds do not count); `defaults` until there are any."""
    seeds = Path(seeds_dir).resolve().as_posix() if seeds_dir else None
    own = [r for r in records if not (seeds and r.source.startswith(seeds.rstrip("/") + "/"))]
    if not own:
        return list(defaults)
    out: list[str] = []
    for r in own:
        name = _short_title(r)
        out.append(f"What is {name} about?")
        if r.authors:
            out.append(f"Who wrote {name}?")
    if len(own) > 1:
        out.insert(1, f"Summarise {_short_title(own[1])}")
    return list(dict.fromkeys(out))[:limit]


def _short_title(r: DocumentRecord) -> str:
    if r.title is not None and len(r.title.text.split()) <= 12:
        return " ".join(r.title.text.split())
    return PurePosixPath(r.source).name


def _e(text: str) -> str:
    return html.escape(text, quote=True)
