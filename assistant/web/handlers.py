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

from assistant.errors import InputError
from assistant.schema import Citation
from assistant.web.conversations import SavedTurn
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
    render_viewer,
)
from assistant.web.service import Service, Turn, parse_history, public_error

LOCAL_USER = "local"  # the one user of a server without a password

logger = logging.getLogger(__name__)


@dataclass
class ChatView:
    """What a chat event shows: the question box, the conversation, the sources panel, the turns kept,
    the conversation's id (None: not saved yet) and the list of conversations (None: unchanged)."""

    question: str
    messages: list[dict]
    sources: str | None  # None: the panel stays as it is
    turns: list[Turn]
    conversation: str | None = None
    choices: list[tuple[str, str]] | None = None  # (title, id), the most recent first


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
class OpenView:
    """A clicked citation: the sources panel with it forward, and the passage opened in its document."""

    sources: str | None
    viewer: str | None


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
        self,
        question: str | None,
        turns: list[Turn] | None,
        generator: str | None,
        scope: list[str] | None = None,
        user: str = LOCAL_USER,
        conversation: str | None = None,
    ) -> Iterator[ChatView]:
        """Stream an answer: the growing text, then the finished bubble and its sources (or one error line).

        `scope`: shown names of the documents to answer from (None or empty: all). The finished answer is
        saved in the user's conversation (a new one, titled by the question, when there is none yet).
        """
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
                    yield ChatView("", [*shown, asked, bubble], None, turns, conversation)
                else:
                    turns.append(Turn(printable(question), item.text, render_answer(item), item))
                    conversation, choices = self._save(user, conversation, turns[-1])
                    sources = self.sources(turns, len(turns) - 1)
                    yield ChatView("", render_messages(turns), sources, turns, conversation, choices)
        except Exception as exc:  # a clear line in the chat, one line in the log, never a stack trace
            reason = public_error(exc)
            logger.warning("chat answered with an error: %s", reason)
            bubble = {"role": "assistant", "content": render_error(reason)}
            yield ChatView(printable(question), [*shown, asked, bubble], None, turns, conversation)

    def _save(self, user: str, conversation: str | None, turn: Turn) -> tuple[str | None, list | None]:
        """Keep a finished turn; a failure to save is logged and the chat goes on unsaved."""
        store = self.service.conversations
        try:
            if conversation is None:
                conversation = store.create(user, turn.question)
            store.add_turn(user, conversation, SavedTurn(turn.question, turn.answer, turn.result))
            return conversation, self.choices(user)
        except Exception as exc:
            logger.warning("could not save the conversation: %s", public_error(exc))
            return conversation, None

    # -- conversations ---------------------------------------------------------------------------
    def choices(self, user: str) -> list[tuple[str, str]]:
        """The user's conversations as (title, id), the most recent first."""
        return [(c.title, c.id) for c in self.service.conversations.list(user)]

    def switch(self, user: str, conversation: str | None) -> ChatView:
        """Show a saved conversation: its turns, and the sources of its last answer."""
        if not conversation:
            return self.new(user)
        try:
            saved = self.service.conversations.turns(user, conversation)
        except InputError:
            return self.new(user)
        turns = [
            Turn(t.question, t.answer, render_answer(t.result) if t.result else render_error(t.error or ""), t.result,
                 t.feedback)
            for t in saved
        ]  # fmt: skip
        sources = self.sources(turns, len(turns) - 1) if turns else render_sources(None)
        return ChatView("", render_messages(turns), sources, turns, conversation, self.choices(user))

    def new(self, user: str) -> ChatView:
        """An empty chat; it is saved as a conversation once its first answer comes."""
        return ChatView("", [], render_sources(None), [], None, self.choices(user))

    def latest(self, user: str) -> ChatView:
        """What a page opening shows: the user's most recent conversation, if any."""
        choices = self.choices(user)
        return self.switch(user, choices[0][1]) if choices else self.new(user)

    def rename(self, user: str, conversation: str | None, title: str | None) -> list[tuple[str, str]] | None:
        if conversation:
            self.service.conversations.rename(user, conversation, title or "")
        return self.choices(user)

    def delete(self, user: str, conversation: str | None) -> ChatView:
        """Delete a conversation and show the most recent one left (or an empty chat)."""
        if conversation:
            self.service.conversations.delete(user, conversation)
        return self.latest(user)

    def rate(self, user: str, conversation: str | None, message: int, liked: bool | None, turns: list[Turn]) -> None:
        """Thumbs up (True), down (False) or taken back (None) on the answer at chat message `message`."""
        position = message // 2  # messages alternate: question, answer
        if conversation is None or not 0 <= position < len(turns):
            return
        rating = 0 if liked is None else (1 if liked else -1)
        turns[position].feedback = rating
        self.service.conversations.set_feedback(user, conversation, position, rating)

    def export(self, user: str, conversation: str | None, folder: Path) -> Path | None:
        """The conversation as a Markdown file in `folder` (with its citations), or None when there is none."""
        if not conversation:
            return None
        store = self.service.conversations
        title = store.title(user, conversation)
        name = "".join(ch if ch.isalnum() or ch in " -_" else "_" for ch in title).strip()[:60] or "conversation"
        path = Path(folder) / f"{name}.md"
        path.write_text(store.markdown(user, conversation), encoding="utf-8")
        return path

    def sources(self, turns: list[Turn], turn: int, focus: int | None = None) -> str:
        """The sources panel of one answer of the conversation, citation `focus` brought forward."""
        result = turns[turn].result if 0 <= turn < len(turns) else None
        return render_sources(result, self.service.reader, self.service.names().show, turn=turn, focus=focus)

    def open(self, ref: str | None, turns: list[Turn] | None) -> OpenView:
        """A click on a citation: `cite:T:N` shows answer T's sources with [N] forward; `open:T:N` also
        opens passage N at its place in its document (a PDF's page as a picture, the quote marked)."""
        turns = list(turns or [])
        try:
            kind, turn, n = (ref or "").split(":")
            turn, n = int(turn), int(n)
            result = turns[turn].result
            c = next(c for c in (result.citations if result else []) if c.n == n)
        except (ValueError, IndexError, StopIteration):
            return OpenView(None, None)
        sources = self.sources(turns, turn, focus=n)
        if kind != "open":
            return OpenView(sources, None)
        return OpenView(sources, self.viewer(c))

    def viewer(self, c: Citation) -> str:
        """The passage at its place in its document: a PDF page rendered with the quote and answer marked."""
        show = self.service.names().show
        if Path(c.source).suffix.lower() == ".pdf" and c.page is not None and self.service.reader.document(c):
            from assistant.ingest.formats.pdf.picture import render_page

            exact = c.text[c.answer_start : c.answer_end] if c.answer_start is not None else ""
            try:
                picture = render_page(c.source, c.page, c.quote, exact)
                note = "" if picture.found else "The quoted sentence could not be found on this page's picture."
                return render_viewer(c, show, picture=picture.image, note=note)
            except Exception as exc:  # a clear line, never a stack trace
                logger.warning("page picture failed: %s", public_error(exc))
        context = self.service.reader.around(c, window=3000)
        note = "" if context else "The document changed or is gone since it was indexed: only the passage is shown."
        return render_viewer(c, show, context=context, note=note)

    def clear(self) -> ChatView:
        return ChatView("", [], render_sources(None), [])

    def documents(self) -> DocumentsView:
        """The Documents table and the names to pick from: shown names only; the server maps them back."""
        docs, names = self.service.details(), self.service.names()
        records = list(self.service.base.records().values())
        table = render_documents(docs, names) + render_records(records, names.show)
        examples = example_questions(records, (), self.service.settings.seeds_dir) or None
        return DocumentsView(table, [names.show(d.source) for d in docs], examples=examples)

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
