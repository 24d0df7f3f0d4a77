"""The chat page's events as plain methods over `Service`: typed results, no Gradio needed.

`page.py` wires these to Gradio components and turns the results into component updates;
here they can be called (and tested) directly. `None` in a result means "leave that part of
the page as it is".
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.web.records_view import example_questions, render_records
from assistant.web.render import (
    printable,
    render_answer,
    render_documents,
    render_error,
    render_messages,
    render_note,
    render_sources,
    render_text,
    render_upload_status,
)
from assistant.web.service import Service, Turn, parse_history, public_error

logger = logging.getLogger(__name__)


@dataclass
class ChatView:
    """What a chat event shows: the question box, the conversation, the sources panel, the turns kept."""

    question: str
    messages: list[dict]
    sources: str | None  # None: the panel stays as it is
    turns: list[Turn]


@dataclass
class DocumentsView:
    """The Documents tab: the table, the names a user can pick for removal, a status line.

    `table` and `choices` are None when they stay as they are.
    """

    table: str | None
    choices: list[str] | None
    status: str = ""
    examples: list[str] | None = None  # questions about the user's own documents; None: the default ones


@dataclass
class AskResult:
    """The `/ask` endpoint's reply: the answer's JSON, or the one-line reason it failed."""

    payload: dict | None = None
    error: str | None = None


class ChatHandlers:
    """The page's event handlers over one `Service`.

    Args:
        service: The shared service (index, generators, shown names).
    """

    def __init__(self, service: Service):
        self.service = service

    def respond(
        self, question: str | None, turns: list[Turn] | None, generator: str | None, scope: list[str] | None = None
    ) -> Iterator[ChatView]:
        """Stream an answer: the growing text, then the finished bubble and its sources (or one error line).
        `scope`: shown names of the documents to answer from (None or empty: all)."""
        turns = list(turns or [])
        question = question or ""
        history = [(t.question, t.answer) for t in turns]
        shown = render_messages(turns)
        asked = {"role": "user", "content": html.escape(printable(question))}
        try:
            assistant = self.service.assistant(generator)
            text = ""
            for item in assistant.stream(question, history, self.service.scope(list(scope or []) or None)):
                if isinstance(item, str):
                    text += item
                    bubble = {"role": "assistant", "content": render_text(text)}
                    yield ChatView("", [*shown, asked, bubble], None, turns)
                else:
                    turns.append(Turn(printable(question), item.text, render_answer(item)))
                    sources = render_sources(item, self.service.reader, self.service.names().show)
                    yield ChatView("", render_messages(turns), sources, turns)
        except Exception as exc:  # a clear line in the chat, one line in the log, never a stack trace
            reason = public_error(exc)
            logger.warning("chat answered with an error: %s", reason)
            bubble = {"role": "assistant", "content": render_error(reason)}
            yield ChatView(printable(question), [*shown, asked, bubble], None, turns)

    def clear(self) -> ChatView:
        return ChatView("", [], render_sources(None), [])

    def documents(self) -> DocumentsView:
        """The Documents table and the names to pick from: shown names only; the server maps them back."""
        docs, names = self.service.documents(), self.service.names()
        records = list(self.service.base.records().values())
        table = render_documents(docs, names) + render_records(records, names.show)
        examples = example_questions(records, (), self.service.settings.seeds_dir) or None
        return DocumentsView(table, [names.show(s) for s in docs], examples=examples)

    def upload(
        self,
        files: Sequence | None,
        progress: Callable | None = None,
        *,
        folder: Path | None = None,
        received: Collection[str] | None = None,
    ) -> DocumentsView:
        """Save and index uploaded files; only files this server's upload route wrote (see `Service.upload`)."""
        if not files:
            return DocumentsView(None, None, render_note("Choose files to upload first.", muted=True))
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]
        try:  # a crafted event can name any server path: Service.upload checks each against `folder`
            done, refused = self.service.upload(paths, progress=progress, folder=folder, received=received)
        except Exception as exc:
            done, refused = [], [public_error(exc)]
        view = self.documents()
        view.status = render_upload_status(done, refused)
        return view

    def remove(self, shown: str | None) -> DocumentsView:
        """Drop a document (by its shown name) from the index."""
        if not shown:
            return DocumentsView(None, None, render_note("Pick a document to remove.", muted=True))
        try:
            message = self.service.remove(shown)
        except Exception as exc:
            message = public_error(exc)
        view = self.documents()
        view.status = render_note(message)
        return view

    def ask(self, question: str, history: list | None = None, generator: str | None = None) -> AskResult:
        """Answer from the documents: the JSON of `assistant ask --json` (sources as shown names)."""
        try:
            answer = self.service.assistant(generator).answer(question, parse_history(history))
            return AskResult(payload=self.service.public(answer))
        except Exception as exc:  # the client gets the one-line reason; the log gets one line
            reason = public_error(exc)
            logger.warning("/ask answered with an error: %s", reason)
            return AskResult(error=reason)
