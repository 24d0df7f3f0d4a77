"""Attribution after generation: real embedding model, real passages (hand-written and retrieved)."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import TEXTS

from assistant.grounding.citations import build_answer
from assistant.grounding.claims import ABSTENTION, CLAIM, META, Vocabulary, entities, marker_numbers, split_answer
from assistant.grounding.grounder import UNSUPPORTED_WARNING, Grounder
from assistant.schema import Chunk, Draft, Passage


@pytest.fixture(scope="module")
def grounder(seed_assistant) -> Grounder:
    return Grounder(seed_assistant.embedder)


@pytest.fixture(scope="module")
def passages() -> list[Passage]:
    return [Passage(Chunk(f"c{i}", f"doc{i}.txt", t, 0, len(t)), 0.5) for i, t in enumerate(TEXTS)]


# -- reading an answer -----------------------------------------------------------------------------
def test_markers_belong_to_their_sentence_even_after_the_full_stop():
    split = split_answer("Basel is on the Rhine [1]. Ashgabat hosted it. [2] Hall teaches at Bath [1, 3][2-3].")
    assert [s.markers for s in split.sentences] == [(1,), (2,), (1, 3, 2, 3)]
    texts = [s.text for s in split.sentences]
    assert texts == ["Basel is on the Rhine.", "Ashgabat hosted it.", "Hall teaches at Bath."]
    assert marker_numbers("2-4") == (2, 3, 4)


def test_abstentions_and_talk_about_the_answer_are_not_claims():
    answer = (
        "Here is what I found. I could not find this in the documents. The passages do not mention his age. "
        "According to passage 2, Basel is on the Rhine."
    )
    assert [s.kind for s in split_answer(answer).sentences] == [META, ABSTENTION, ABSTENTION, CLAIM]
    # A cited sentence that mentions a gap is an answer, not a decline.
    gap = split_answer("Basel is on the Rhine, though the passages do not mention its age [1].")
    assert gap.sentences[0].kind == CLAIM


def test_names_and_numbers_are_read_as_a_checker_needs_them():
    found = entities("However, according to passage 2, Stephen Hall's S-400s cost $12,000 in the 1970s and twelve.")
    assert found == ["Stephen", "Hall's", "S-400s", "$12,000", "1970s", "twelve"]  # no "However", no "2"
    vocabulary = Vocabulary("Iran bought S-400 missiles for 12000 dollars in 1974; Temür and the ctenophores.")
    assert all(vocabulary.has(w) for w in ["Iranian", "S-400s", "$12,000", "Temur", "Ctenophora"])
    assert not any(vocabulary.has(w) for w in ["1975", "1974s", "Iraq", "Temple", "12"])


# -- the check -----------------------------------------------------------------------------------
def test_a_claim_without_markers_gets_the_passage_that_supports_it(grounder, passages):
    g = grounder.ground("Ashgabat hosted a forum for Magtymguly Pyragy's 300th anniversary.", passages)
    assert g.cited == (2,) and g.text.endswith("[2].") and not g.unsupported
    assert g.quotes[2] in passages[1].chunk.text and "300th" in g.quotes[2]


def test_a_claim_citing_the_wrong_passage_is_re_attributed(grounder, passages):
    g = grounder.ground("Stephen Hall teaches Russian politics at the University of Bath [1].", passages)
    assert g.cited == (3,) and "[1]" not in g.text and "[3]" in g.text
    assert "does not support" in g.sentences[0].reason
    kept = grounder.ground("Stephen Hall teaches Russian politics at the University of Bath [3].", passages)
    assert kept.cited == (3,) and kept.sentences[0].reason.startswith("supported by the cited")


def test_an_invented_number_or_name_makes_its_sentence_unsupported(grounder, passages):
    right = grounder.ground("The Rhine runs 1230 km from the Swiss Alps to the North Sea [1].", passages)
    assert right.cited == (1,) and not right.unsupported
    wrong = grounder.ground("The Rhine runs 1,450 km from the Swiss Alps to the North Sea [1].", passages)
    assert wrong.cited == () and "'1,450'" in wrong.unsupported[0].reason and "[1]" not in wrong.text
    name = grounder.ground("Stephen Hall teaches Russian politics at the University of Oxford.", passages)
    assert "'Oxford'" in name.unsupported[0].reason


def test_a_number_must_come_from_a_passage_that_supports_the_sentence(grounder, passages):
    # 2024 is in passage 2, but passage 2 says nothing of the Rhine.
    g = grounder.ground("The Rhine flows from the Swiss Alps to the North Sea since 2024.", passages)
    assert g.unsupported and "supports it: '2024'" in g.unsupported[0].reason


def test_unsupported_sentences_are_located_in_the_rewritten_text(grounder, passages):
    answer = "Basel is the first major city on the Rhine. It is a private meeting between two key figures. [2]"
    g = grounder.ground(answer, passages)
    assert g.cited == (1,) and len(g.unsupported) == 1
    u = g.unsupported[0]
    assert g.text[u.start : u.end] == u.text == "It is a private meeting between two key figures."
    assert "no passage supports it" in u.reason and not grounder.mostly_unsupported(g)


def test_an_off_topic_answer_is_mostly_unsupported(grounder, passages):
    g = grounder.ground(
        "To bake bread, mix flour, water and yeast [1]. Knead the dough and let it rise [2]. Bake for 40 minutes.",
        passages,
    )
    assert len(g.unsupported) == 3 and g.cited == () and grounder.mostly_unsupported(g)
    assert UNSUPPORTED_WARNING == "the language model's answer was not supported by the documents"


def test_abstention_text_produces_no_claims(grounder, passages):
    g = grounder.ground("I could not find this in the documents.", passages)
    assert g.claims == () and g.unsupported == () and g.declines and not grounder.mostly_unsupported(g)
    chatter = grounder.ground("Here is the answer based on the passages:", passages)
    assert chatter.claims == () and grounder.mostly_unsupported(chatter)  # says nothing, declines nothing


def test_echoed_prompt_markup_is_not_a_claim(grounder, passages):
    echo = 'The answer is:\n<passage n="2" source="doc1.txt">\nAshgabat hosted the forum for Magtymguly.\n</passage>'
    g = grounder.ground(echo, passages)
    assert [s.kind for s in g.sentences] == [META, CLAIM] and g.cited == (2,) and not g.unsupported
    assert "<passage" not in g.text


def test_a_terse_claim_is_judged_as_the_answer_to_its_question(grounder, passages):
    who = "Who teaches Russian politics at the University of Bath?"
    right = grounder.ground("Stephen Hall.", passages, question=who)
    assert right.cited == (3,) and not right.unsupported
    # The name is in a passage, but nothing there says he hosted the forum.
    wrong = grounder.ground("Stephen Hall.", passages, question="Which city hosted the forum for the poet?")
    assert wrong.unsupported and wrong.cited == ()


def test_no_passages_leaves_every_claim_unsupported(grounder):
    g = grounder.ground("Basel is on the Rhine [1].", [])
    assert g.cited == () and "no passages" in g.unsupported[0].reason


def test_the_grounded_draft_builds_an_answer_with_exact_quotes(grounder, passages):
    g = grounder.ground("Hall said Russia would not want to antagonise Israel. Basel lies on the Rhine [3].", passages)
    answer = build_answer(Draft(g.text, abstained=False, quotes=dict(g.quotes)), passages, generator="llamacpp")
    assert [c.source for c in answer.citations] == ["doc2.txt", "doc0.txt"]
    assert all(c.quote in c.text for c in answer.citations)
    assert answer.text == "Hall said Russia would not want to antagonise Israel [1]. Basel lies on the Rhine [2]."


def test_preparing_the_passages_changes_the_cost_not_the_verdicts(seed_assistant, passages):
    answer = (
        "Hall thinks Russia avoids angering Israel. The poet Magtymguly was honoured in Ashgabat. "
        "Rotterdam is close to where the Rhine ends."
    )
    cold = Grounder(seed_assistant.embedder).ground(answer, passages)
    prepared = Grounder(seed_assistant.embedder)
    prepared.prepare(passages)
    warm = prepared.ground(answer, passages)
    assert [(s.supported, s.passages) for s in warm.sentences] == [(s.supported, s.passages) for s in cold.sentences]
    assert warm.cited == (3, 2, 1)


def test_words_decide_alone_outside_the_uncertain_band(grounder):
    assert not grounder.needs_meaning(np.array([0.1, 0.05]), ())
    assert not grounder.needs_meaning(np.array([0.95]), ())
    assert grounder.needs_meaning(np.array([0.4]), ())
    assert not grounder.needs_meaning(np.array([0.4]), ("1975",))
    with pytest.raises(ValueError):
        Grounder(grounder.embedder, threshold=0.9, lexical_sure=0.6)


def test_at_most_max_embedded_claims_are_embedded_per_answer(grounder, passages):
    claims = [
        "Hall thinks Russia avoids angering Israel.",
        "The poet Magtymguly was honoured in Ashgabat.",
        "Rotterdam is close to where the Rhine ends.",
    ]
    measured = grounder.measure(claims, passages)
    assert sum(grounder.needs_meaning(e.lexical, e.missing) for e in measured) >= 2  # the words leave these open...
    weighed = [e.meaning is not None for e in measured]
    assert sum(weighed) == grounder.max_embedded == 1  # ...but only one is embedded


# -- the seed article, through retrieval and a fake LLM -------------------------------------------
def _llm_draft(seed_assistant, question: str, reply: str):
    """What the LLM generator returns for `reply`, over the passages retrieved for `question`."""
    from fakes import fake

    from assistant.generation.llm import OpenAIGenerator

    passages = seed_assistant.retrieve(question)
    return OpenAIGenerator(url="http://127.0.0.1:9/v1", llm=fake(reply)).generate(question, passages), passages


QUESTION = "Why might Russia not send S-400s to Iran?"


def test_a_fake_llm_that_omits_markers_or_cites_wrongly_gets_the_right_passage(seed_assistant, grounder):
    passages = seed_assistant.retrieve(QUESTION)
    hall = next(n for n, p in enumerate(passages, 1) if "Stephen Hall" in p.chunk.text)
    other = next(n for n, p in enumerate(passages, 1) if "Stephen Hall" not in p.chunk.text)
    claim = "Stephen Hall said Russia would not want to antagonise Israel and America."
    for reply in (claim, claim.replace(".", f" [{other}].")):
        draft, passages = _llm_draft(seed_assistant, QUESTION, reply)
        g = grounder.ground(draft.text, passages)
        assert g.cited == (hall,), (reply, g.sentences)


def test_a_fake_llm_that_invents_is_flagged(seed_assistant, grounder):
    reply = (
        "Russia wants to keep Israel away from funding Ukraine. "
        "Stephen Hall said Russia would send 40 S-400 systems to Iran. "
        "It is a private meeting between two key figures."
    )
    draft, passages = _llm_draft(seed_assistant, QUESTION, reply)
    g = grounder.ground(draft.text, passages)
    assert [s.supported for s in g.claims] == [True, False, False], g.sentences
    assert "'40'" in g.unsupported[0].reason
    off_topic, passages = _llm_draft(seed_assistant, QUESTION, "Sourdough needs flour, water and a starter [1].")
    assert grounder.mostly_unsupported(grounder.ground(off_topic.text, passages))


@pytest.mark.parametrize(
    "question",
    ["Why might Russia not send S-400s?", "Where did Putin meet Pezeshkian?", "What has Iran supplied to Russia?"],
)
def test_the_extractive_answer_is_supported_by_construction(seed_assistant, grounder, question):
    passages = seed_assistant.retrieve(question)
    draft = seed_assistant.extractive.generate(question, passages)
    assert not draft.abstained
    g = grounder.ground(draft.text, passages)
    assert g.claims and all(s.supported for s in g.claims), g.sentences
    assert set(g.cited) == set(draft.quotes)
