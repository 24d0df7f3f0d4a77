"""The extractive generator on a real index: exact quotes, honest declines, plain answers."""

from __future__ import annotations

import pytest

from assistant.pipeline import Assistant
from assistant.settings import PROJECT_ROOT

FACTS = """Harbour town

The town of Pellmore lies on the northern coast and has about 12,000 inhabitants.

Its harbour was built in 1847 by the engineer Agatha Brindle to shelter the fishing fleet.

Every August the town holds a lantern festival, when boats carry paper lanterns across the bay.
"""


@pytest.fixture(scope="module")
def assistant(tmp_path_factory) -> Assistant:
    docs = tmp_path_factory.mktemp("docs")
    (docs / "pellmore.txt").write_text(FACTS)
    a = Assistant(index_dir=tmp_path_factory.mktemp("index"), progress=False, generator="extractive")
    a.index([docs, *sorted((PROJECT_ROOT / "seeds").glob("*.txt"))])
    return a


def test_answers_a_plainly_answerable_question(assistant):
    result = assistant.answer("Who built the harbour of Pellmore?")
    assert not result.abstained
    assert "Agatha Brindle" in result.text
    assert result.citations and "pellmore" in result.citations[0].source


def test_quotes_are_short_substrings_of_their_passages(assistant):
    for question in ("When was the harbour built?", "What did Ettelaat demand?", "Who is Stephen Hall?"):
        result = assistant.answer(question)
        assert not result.abstained, question
        for c in result.citations:
            assert c.quote in c.text
            assert len(c.quote) < 600


@pytest.mark.parametrize("question", ["How do I bake sourdough bread?", "What is the best way to learn the guitar?"])
def test_declines_off_topic(assistant, question):
    result = assistant.answer(question)
    assert result.abstained and not result.citations


def test_stream_deltas_join_to_the_text(assistant):
    items = list(assistant.stream("How many inhabitants does Pellmore have?"))
    final = items[-1]
    assert "".join(items[:-1]) == final.text
    assert "12,000" in final.text


def test_sentence_cache_holds_under_concurrent_questions(assistant):
    """The chat server answers one question per core at once through one generator: its shared
    sentence-vector cache must never lose a vector between storing and reading it."""
    import threading

    from assistant.embedding import Embedder
    from assistant.generation.extractive import ExtractiveGenerator

    questions = [
        "Who built the harbour of Pellmore?",
        "How many inhabitants does Pellmore have?",
        "When does the lantern festival take place?",
        "Why might Russia not send S-400s?",
        "Where did Putin meet Pezeshkian?",
        "What has Iran been supplying to Russia?",
    ]
    passages = {q: assistant.retrieve(q) for q in questions}
    expected = {q: assistant.extractive.generate(q, passages[q]) for q in questions}
    # Smaller than what the six questions need together (33 texts), larger than what one needs (at most 24).
    shared = ExtractiveGenerator(Embedder(cache_dir=assistant.embedder.cache_dir, cache_size=30))
    failures: list[BaseException] = []

    def ask(offset: int) -> None:
        try:
            for n in range(24):
                q = questions[(offset + n) % len(questions)]
                assert shared.generate(q, passages[q]).text == expected[q].text
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, repr(failures[:3])
