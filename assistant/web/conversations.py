"""Conversations kept on the server, per user, in the index folder (sqlite3 from the standard library).

Why sqlite: one file beside the index, safe with several server threads, nothing to install, and it
survives a restart. Each turn keeps the question, the answer with its citations (the JSON of
`assistant ask --json`) and the user's thumbs up or down, so feedback can be exported with what it
was about (`assistant feedback --json`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import InputError
from assistant.schema import Answer, Citation, Unsupported

FILE_NAME = "conversations.sqlite3"
_TITLE_CHARS = 60
_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, user TEXT NOT NULL, title TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_user ON conversations (user, updated);
CREATE TABLE IF NOT EXISTS turns (
    conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE, position INTEGER NOT NULL,
    question TEXT NOT NULL, answer TEXT NOT NULL, result TEXT, error TEXT, feedback INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL, PRIMARY KEY (conversation, position));
"""


@dataclass(frozen=True)
class ConversationInfo:
    """A conversation in the list: its id, title and when it last changed (seconds since the epoch)."""

    id: str
    title: str
    updated: float


@dataclass(frozen=True)
class SavedTurn:
    """One question and its answer as kept: `result` is None when the answer was an error (`error`)."""

    question: str
    answer: str
    result: Answer | None
    error: str | None = None
    feedback: int = 0


@dataclass(frozen=True)
class FeedbackRecord:
    """A rated answer: who rated it, +1 or -1, the question, the answer and its citations."""

    user: str
    conversation: str
    position: int
    rating: int
    question: str
    answer: dict
    created: float

    def to_dict(self) -> dict:
        return {
            "user": self.user,
            "conversation": self.conversation,
            "turn": self.position,
            "rating": "up" if self.rating > 0 else "down",
            "question": self.question,
            "answer": self.answer,
            "created": self.created,
        }


class ConversationStore:
    """The conversations of every user of one index.

    Args:
        path: The sqlite file (created on first use), normally `<index>/conversations.sqlite3`.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        db.execute("PRAGMA foreign_keys = ON")
        if not self._ready:
            db.executescript(_SCHEMA)
            self._ready = True
        return db

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            db = self._connect()
            try:
                with db:
                    return db.execute(sql, args).fetchall()
            finally:
                db.close()

    def list(self, user: str) -> list[ConversationInfo]:
        """The user's conversations, the most recently changed first."""
        rows = self._run("SELECT id, title, updated FROM conversations WHERE user = ? ORDER BY updated DESC", (user,))
        return [ConversationInfo(*r) for r in rows]

    def create(self, user: str, title: str) -> str:
        now = time.time()
        cid = uuid.uuid4().hex[:16]
        self._run("INSERT INTO conversations VALUES (?, ?, ?, ?, ?)", (cid, user, _title(title), now, now))
        return cid

    def rename(self, user: str, cid: str, title: str) -> None:
        if not title.strip():
            raise InputError("A conversation needs a name.")
        self._own(user, cid)
        self._run("UPDATE conversations SET title = ? WHERE id = ?", (_title(title), cid))

    def delete(self, user: str, cid: str) -> None:
        self._own(user, cid)
        self._run("DELETE FROM turns WHERE conversation = ?", (cid,))
        self._run("DELETE FROM conversations WHERE id = ?", (cid,))

    def title(self, user: str, cid: str) -> str:
        return self._own(user, cid)

    def add_turn(self, user: str, cid: str, turn: SavedTurn) -> int:
        """Append a turn; returns its position in the conversation."""
        self._own(user, cid)
        result = json.dumps(turn.result.to_dict(), ensure_ascii=False) if turn.result is not None else None
        with self._lock:
            db = self._connect()
            try:
                with db:
                    (n,) = db.execute("SELECT COUNT(*) FROM turns WHERE conversation = ?", (cid,)).fetchone()
                    now = time.time()
                    db.execute(
                        "INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (cid, n, turn.question, turn.answer, result, turn.error, turn.feedback, now),
                    )
                    db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, cid))
                    return n
            finally:
                db.close()

    def turns(self, user: str, cid: str) -> list[SavedTurn]:
        self._own(user, cid)
        rows = self._run(
            "SELECT question, answer, result, error, feedback FROM turns WHERE conversation = ? ORDER BY position",
            (cid,),
        )
        return [SavedTurn(q, a, answer_from_dict(json.loads(r)) if r else None, e, f) for q, a, r, e, f in rows]

    def set_feedback(self, user: str, cid: str, position: int, rating: int) -> None:
        """+1 (thumbs up), -1 (thumbs down) or 0 (taken back) for one answer."""
        self._own(user, cid)
        self._run(
            "UPDATE turns SET feedback = ? WHERE conversation = ? AND position = ?",
            (max(-1, min(1, rating)), cid, position),
        )

    def feedback(self) -> list[FeedbackRecord]:
        """Every rated answer of every user, oldest first."""
        rows = self._run(
            "SELECT c.user, t.conversation, t.position, t.feedback, t.question, t.answer, t.result, t.created "
            "FROM turns t JOIN conversations c ON c.id = t.conversation WHERE t.feedback != 0 ORDER BY t.created"
        )
        return [
            FeedbackRecord(u, c, p, f, q, json.loads(r) if r else {"answer": a, "citations": []}, t)
            for u, c, p, f, q, a, r, t in rows
        ]

    def markdown(self, user: str, cid: str) -> str:
        """The conversation as Markdown: each question, its answer, and the cited passages with their quotes."""
        lines = [f"# {self._own(user, cid)}", ""]
        for t in self.turns(user, cid):
            lines += [f"## {t.question}", "", t.answer if t.result is None else t.result.text, ""]
            if t.error:
                lines += [f"_Cannot answer: {t.error}_", ""]
            for c in t.result.citations if t.result else []:
                where = Path(c.source).name + (f", page {c.page}" if c.page is not None else "")
                where += f" — {c.section}" if c.section else ""
                lines.append(f"[{c.n}] {where}")
                lines.append(f"> {' '.join(c.quote.split())}")
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def _own(self, user: str, cid: str) -> str:
        """The conversation's title, if it is this user's (anyone else's is "not found")."""
        rows = self._run("SELECT title FROM conversations WHERE id = ? AND user = ?", (cid, user))
        if not rows:
            raise InputError("That conversation does not exist (any more).")
        return rows[0][0]


def answer_from_dict(d: dict) -> Answer:
    """An `Answer` back from its JSON (`Answer.to_dict`)."""
    return Answer(
        text=d.get("answer", ""),
        abstained=bool(d.get("abstained")),
        citations=[Citation(**c) for c in d.get("citations", [])],
        generator=d.get("generator") or "reader",
        warning=d.get("warning"),
        unsupported=[Unsupported(**u) for u in d.get("unsupported", [])],
        short=d.get("short"),
    )


def _title(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _TITLE_CHARS else text[: _TITLE_CHARS - 1] + "…"
