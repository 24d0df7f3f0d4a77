"""The conversation store: per user, kept in sqlite, with feedback and a Markdown export."""

from __future__ import annotations

import pytest

from assistant.errors import InputError
from assistant.schema import Answer, Citation
from assistant.web.conversations import ConversationStore, SavedTurn


def answer() -> Answer:
    text = "Intro. The apiary keeps 417 hives."
    quote = "The apiary keeps 417 hives."
    c = Citation(1, "/docs/apiary.pdf", text, quote, 0, 34, 2, 0.9, answer_start=24, answer_end=27)
    return Answer("417 — The apiary keeps 417 hives. [1]", False, [c], generator="reader", short="417")


def test_conversations_are_each_users_own_and_survive_reopening(tmp_path):
    path = tmp_path / "conversations.sqlite3"
    store = ConversationStore(path)
    alice = store.create("alice", "How many hives?")
    position = store.add_turn("alice", alice, SavedTurn("How many hives?", answer().text, answer()))
    assert position == 0
    with pytest.raises(InputError):
        store.turns("bob", alice)  # another user's conversation does not exist for bob
    with pytest.raises(InputError):
        store.delete("bob", alice)
    assert store.list("bob") == []
    again = ConversationStore(path)  # a restart
    [info] = again.list("alice")
    assert info.id == alice and info.title == "How many hives?"
    [turn] = again.turns("alice", alice)
    assert turn.result == answer()  # citations, short answer and all
    again.rename("alice", alice, "Bees")
    assert again.list("alice")[0].title == "Bees"


def test_feedback_and_markdown_export_carry_the_citations(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite3")
    cid = store.create("local", "Hives")
    store.add_turn("local", cid, SavedTurn("How many hives?", answer().text, answer()))
    assert store.feedback() == []
    store.set_feedback("local", cid, 0, -1)
    [record] = store.feedback()
    assert record.to_dict()["rating"] == "down" and record.question == "How many hives?"
    assert record.answer["citations"][0]["page"] == 2
    md = store.markdown("local", cid)
    assert md.startswith("# Hives\n") and "## How many hives?" in md
    assert "[1] apiary.pdf, page 2" in md and "> The apiary keeps 417 hives." in md
    store.delete("local", cid)
    assert store.list("local") == [] and store.feedback() == []
