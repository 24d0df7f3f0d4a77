"""The grounding check wired into answers: fake LLMs (scripted replies) over real passages, the real
embedding model and the real extractive generator standing in; the extractive answer is never checked."""

from __future__ import annotations

import pytest
from fakes import TEXTS, fake

from assistant.generation import with_fallback
from assistant.generation.llm import OpenAIGenerator
from assistant.grounding.citations import build_answer
from assistant.grounding.grounder import UNSUPPORTED_WARNING
from assistant.schema import Answer, Chunk, Passage

URL = "http://llm.test:9/v1"
QUESTION = "Why might Russia not send S-400s to Iran?"


@pytest.fixture(scope="module")
def passages() -> list[Passage]:
    return [Passage(Chunk(f"c{i}", f"doc{i}.txt", t, 0, len(t)), 0.5) for i, t in enumerate(TEXTS)]


def answers(seed_assistant, reply: str, passages: list[Passage]) -> tuple[Answer, Answer, str]:
    """The answer to `reply` written whole and streamed (through the grounded, fallback-wrapped LLM),
    and the streamed text."""
    llm = OpenAIGenerator(url=URL, llm=fake(reply, reply))
    generator = with_fallback(llm, seed_assistant.extractive, seed_assistant.grounder)
    question = "What do the documents say?"
    whole = generator.generate(question, passages)
    *deltas, streamed = generator.stream(question, passages)
    done = [
        build_answer(d, passages, generator=d.generator or generator.name, warning=d.warning) for d in (whole, streamed)
    ]
    assert done[0] == done[1]  # streaming changes when the text is shown, not the answer
    return done[0], done[1], "".join(deltas)


def test_a_reply_without_markers_cites_the_passage_that_supports_it(seed_assistant, passages):
    reply = "Ashgabat hosted a forum for Magtymguly Pyragy's 300th anniversary."
    ans, _, shown = answers(seed_assistant, reply, passages)
    assert shown.strip() == reply  # the text streams as the model writes it
    assert ans.text == "Ashgabat hosted a forum for Magtymguly Pyragy's 300th anniversary [1]."
    assert [c.source for c in ans.citations] == ["doc1.txt"] and "300th" in ans.citations[0].quote
    assert ans.unsupported == [] and ans.warning is None and ans.generator == "openai"


def test_a_reply_citing_the_wrong_passage_cites_the_right_one(seed_assistant, passages):
    ans, _, _ = answers(
        seed_assistant, "Stephen Hall teaches Russian politics at the University of Bath [1].", passages
    )
    assert ans.text == "Stephen Hall teaches Russian politics at the University of Bath [1]."
    assert [c.source for c in ans.citations] == ["doc2.txt"] and ans.unsupported == []


def test_an_invented_number_is_listed_unsupported_and_cites_nothing(seed_assistant, passages):
    invented = "The Rhine runs 1,450 km from the Swiss Alps to the North Sea."
    reply = (
        "Basel is the first major city on the Rhine [1]. Stephen Hall teaches Russian politics at the "
        f"University of Bath. {invented[:-1]} [1]."
    )
    ans, _, _ = answers(seed_assistant, reply, passages)
    assert [c.source for c in ans.citations] == ["doc0.txt", "doc2.txt"]
    assert ans.text.endswith(f"University of Bath [2]. {invented}")
    [u] = ans.unsupported
    assert ans.text[u.start : u.end] == u.text == invented and "'1,450'" in u.reason
    assert ans.to_dict()["unsupported"] == [u.to_dict()] and ans.warning is None
    assert f'(not found in the sources: "{invented}")' in str(ans)


def test_an_off_topic_reply_gives_way_to_the_extractive_answer_with_the_reason(seed_assistant, passages):
    reply = "To bake bread, mix flour, water and yeast [1]. Knead the dough and let it rise [2]. Bake for 40 minutes."
    ans, _, shown = answers(seed_assistant, reply, passages)
    draft = seed_assistant.extractive.generate("What do the documents say?", passages)
    expected = build_answer(draft, passages, generator="extractive")
    assert ans.generator == "extractive" and UNSUPPORTED_WARNING in ans.warning
    assert (ans.text, ans.citations, ans.unsupported) == (expected.text, expected.citations, [])
    assert shown == f"{reply}\n\n{draft.text}"  # what was shown stays, the extractive answer follows apart


def test_an_llm_answer_through_the_pipeline_carries_its_unsupported_sentence(seed_assistant):
    invented = "Stephen Hall said Russia would send 40 S-400 systems to Iran."
    reply = f"Russia wants to keep Israel away from funding Ukraine. {invented}"
    a = seed_assistant.with_generator(OpenAIGenerator(url=URL, llm=fake(reply, reply)))
    for ans in (a.answer(QUESTION), list(a.stream(QUESTION))[-1]):
        assert ans.generator == "openai" and ans.warning is None and len(ans.citations) == 1
        assert [u.text for u in ans.unsupported] == [invented] and "'40'" in ans.unsupported[0].reason
        assert ans.text.endswith(invented) and ans.text.startswith("Russia wants to keep Israel away")


class Spy:
    """A grounder that counts its checks (and the reading ahead of them), and checks like the real one."""

    def __init__(self, real):
        self.real, self.calls, self.prepared = real, 0, 0

    def prepare(self, passages):
        self.prepared += 1
        return self.real.prepare(passages)

    def ground(self, *args, **kwargs):
        self.calls += 1
        return self.real.ground(*args, **kwargs)

    def mostly_unsupported(self, grounding):
        return self.real.mostly_unsupported(grounding)


def test_the_extractive_generator_never_pays_for_the_check(seed_assistant):
    extractive = seed_assistant.with_generator("extractive")
    extractive.grounder = spy = Spy(seed_assistant.grounder)
    ans, streamed = extractive.answer(QUESTION), list(extractive.stream(QUESTION))[-1]
    assert extractive.generator is extractive.extractive and ans.citations and streamed.text == ans.text
    assert spy.calls == 0 and spy.prepared == 0 and ans.unsupported == []

    reply = "Stephen Hall said Russia would not want to antagonise Israel and America."
    llm = seed_assistant.with_generator(OpenAIGenerator(url=URL, llm=fake(reply)))
    llm.grounder = spy
    assert llm.answer(QUESTION).citations and spy.calls == 1  # the same spy sees an LLM's answer
    assert spy.prepared == 1  # the passages were read while the LLM wrote
