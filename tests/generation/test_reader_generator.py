"""The reader generator (assistant/generation/reader.py): decisions and composition without a model,
then the real reader over a real index of the bundled article and a small unrelated document."""

from __future__ import annotations

import pytest

from assistant.generation import standalone_query
from assistant.generation.base import Candidate
from assistant.generation.decline import Thresholds, decide, usable_probability
from assistant.generation.reader import (
    SEPARATOR,
    compose_short,
    holding,
    lead_of,
    pick,
    refer,
    span_score,
)
from assistant.grounding.citations import build_answer
from assistant.pipeline import Assistant
from assistant.reading import AnswerSpan
from assistant.schema import Chunk, Passage, ShortAnswer

# -- without a model ------------------------------------------------------------------------------


def test_decide_declines_on_weak_evidence_whatever_the_reader_says():
    assert decide(0.9, 0.99, at=Thresholds(decline_at=0.75)).action == "decline"


def test_decide_declines_on_middling_evidence_only_when_the_reader_finds_nothing():
    at = Thresholds(short_at=0.5, decline_at=0.75, doubt_at=0.55, no_span_below=0.2)
    assert decide(0.6, 0.05, at=at).action == "decline"
    assert decide(0.6, 0.30, at=at).action == "sentences"


def test_decide_leads_with_the_short_answer_when_the_reader_is_sure():
    at = Thresholds(short_at=0.5)
    assert decide(0.1, 0.8, at=at).action == "short"
    assert decide(0.1, 0.4, at=at).action == "sentences"


def test_decide_lets_a_sure_reader_answer_a_question_whose_names_the_passages_hold():
    at = Thresholds(short_at=0.5, decline_at=0.75)
    assert decide(1.0, 0.9, named=True, at=at).action == "short"
    assert decide(1.0, 0.3, named=True, at=at).action == "decline"
    assert decide(1.0, 0.9, named=False, at=at).action == "decline"


def test_the_retrievers_view_breaks_close_calls_between_passages():
    passages = [_passage("Stephen Hall said so.", "a.txt"), _passage("Masoud Pezeshkian met Putin.", "b.txt")]
    passages[1] = Passage(passages[1].chunk, 0.4, dense=0.4)
    hall = AnswerSpan(0, 0, 12, "Stephen Hall", 5.0, 7.0, 0.32)
    other = AnswerSpan(1, 0, 17, "Masoud Pezeshkian", 7.0, 6.5, 0.45)
    assert pick([hall, other], passages, weight=0.0) is other  # the reader alone
    assert pick([hall, other], passages, weight=2.0) is hall  # with the passages' cosines (0.9 vs 0.4)
    assert span_score(0.9, 0.0, 2.0) > span_score(0.1, 1.0, 2.0)  # a sure reader still wins
    assert pick([], passages, weight=2.0) is None


def test_a_span_too_long_or_empty_is_no_short_answer():
    assert usable_probability(AnswerSpan(0, 0, 300, "x" * 300, 5.0, 1.0, 0.9)) == 0.0
    assert usable_probability(AnswerSpan(0, 0, 1, " ", 5.0, 1.0, 0.9)) == 0.0
    assert usable_probability(None) == 0.0
    assert usable_probability(AnswerSpan(0, 0, 4, "1847", 5.0, 1.0, 0.9)) == 0.9


def test_holding_widens_a_span_to_its_sentence():
    text = "The harbour opened in 1847. Agatha Brindle built it for the fleet. It still stands."
    start = text.index("Agatha")
    lo, hi = holding(text, start, start + len("Agatha Brindle"))
    assert text[lo:hi] == "Agatha Brindle built it for the fleet."


def _passage(text: str, source: str = "a.txt") -> Passage:
    return Passage(Chunk(f"id-{source}", source, text, 0, len(text)), 0.9, dense=0.9)


def test_the_short_answer_leads_and_its_offsets_survive_renumbering():
    passages = [_passage("Unrelated words about rivers.", "r.txt"), _passage("It was built by Agatha Brindle in 1847.")]
    start = passages[1].chunk.text.index("Agatha")
    short = ShortAnswer("Agatha Brindle", 2, start, start + len("Agatha Brindle"))
    rivers = passages[0].chunk.text
    support = [
        Candidate(2, 0, 0, len(passages[1].chunk.text), passages[1].chunk.text, 0.9, 0.9, 0.9),  # the same sentence
        Candidate(1, 0, 0, len(rivers), rivers, 0.5, 0.5, 0.5),
    ]
    draft = compose_short(short, passages, support)
    answer = build_answer(draft, passages, generator="reader")
    assert answer.short == "Agatha Brindle"
    assert answer.text == f"Agatha Brindle{SEPARATOR}It was built by Agatha Brindle in 1847. [1] {rivers} [2]"
    assert [c.answer_start is None for c in answer.citations] == [False, True]
    cited = answer.citations[0]
    assert cited.text[cited.answer_start : cited.answer_end] == "Agatha Brindle"
    assert cited.quote in cited.text and cited.quote.find("Agatha") >= 0


def test_lead_of_reads_back_only_a_short_lead():
    assert lead_of(f"Stephen Hall{SEPARATOR}…said Stephen Hall. [1]") == "Stephen Hall"
    assert lead_of("Iran has been supplying drones. [1]") is None
    assert lead_of(f"A whole sentence ends here.{SEPARATOR}more") is None


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Where does he teach?", "Where does Stephen Hall teach?"),
        ("What is his job?", "What is Stephen Hall's job?"),
        ("Did they meet her?", "Did Stephen Hall meet her?"),
        ("Where is the university?", "Where is the university?"),
    ],
)
def test_refer_puts_the_previous_short_answer_in_place_of_a_pronoun(question, expected):
    assert refer(question, "Stephen Hall") == expected


# -- the real reader over a real index ------------------------------------------------------------

HARBOUR = """Harbour town

The town of Pellmore lies on the northern coast and has about 12,000 inhabitants.

Its harbour was built in 1847 by the engineer Agatha Brindle to shelter the fishing fleet.
"""


@pytest.fixture(scope="module")
def assistant(seed_dir, tmp_path_factory) -> Assistant:
    docs = tmp_path_factory.mktemp("docs")
    (docs / "pellmore.txt").write_text(HARBOUR)
    a = Assistant(index_dir=tmp_path_factory.mktemp("index"), seeds_dir=seed_dir, progress=False)
    a.index([seed_dir, docs])
    assert a.settings.generator == "reader"
    return a


@pytest.mark.parametrize(
    ("question", "words"),
    [
        pytest.param(
            "Who said Russia wouldn't want to antagonise Israel?",
            "Stephen Hall",
            # Known miss (issue #12 stays open): "Stephen Hall" is the reader's chosen span, but with
            # probability 0.44, under SHORT_AT (0.5), so the answer is the two cited sentences that hold
            # the name, without a short answer.
            marks=pytest.mark.xfail(strict=True, reason="the reader is not sure enough of 'Stephen Hall'"),
        ),
        ("Where are Putin and Pezeshkian meeting?", "Ashgabat"),
        ("When will Putin meet Pezeshkian?", "Friday"),  # not the headline's "today": paragraphs are read apart
        ("Who built the harbour of Pellmore?", "Agatha Brindle"),
        ("What has Iran been supplying to Russia?", "lethal drones and ballistic missiles"),
    ],
)
def test_answers_lead_with_the_exact_words(assistant, question, words):
    answer = assistant.answer(question)
    assert not answer.abstained and answer.generator == "reader"
    assert answer.short is not None and words in answer.short and len(answer.short) < 4 * len(words)
    assert answer.text.startswith(answer.short + SEPARATOR)
    holder = [c for c in answer.citations if c.answer_start is not None]
    assert len(holder) == 1
    c = holder[0]
    assert c.text[c.answer_start : c.answer_end] == answer.short
    assert c.quote in c.text and c.text.find(c.quote) <= c.answer_start < c.answer_end <= c.text.find(c.quote) + len(
        c.quote
    )


def test_a_follow_up_uses_the_previous_short_answer(assistant):
    first = assistant.answer("Who built the harbour of Pellmore?")
    assert first.short and "Agatha Brindle" in first.short
    history = [("Who built the harbour of Pellmore?", first.text)]
    assert assistant.condense("When did she build it?", history) == "When did Agatha Brindle build it?"
    follow = assistant.answer("When did she build it?", history=history)
    assert not follow.abstained and follow.short == "1847"


@pytest.mark.xfail(strict=True, reason="'Where does Stephen Hall teach?' is declined: its passage is far from it")
def test_the_issues_follow_up_on_the_bundled_article(assistant):
    """The issue's example: the first answer should lead with "Stephen Hall" (see the xfail above), and
    "Where does Stephen Hall teach?" should find the University of Bath; today its best passage's cosine
    (0.10) is under the off-topic floor and the reader is not sure enough (0.18) to overrule it."""
    first = assistant.answer("Who said Russia wouldn't want to antagonise Israel?")
    history = [("Who said Russia wouldn't want to antagonise Israel?", first.text)]
    follow = assistant.answer("Where does he teach?", history=history)
    assert first.short == "Stephen Hall" and follow.short and "University of Bath" in follow.short


@pytest.mark.parametrize("question", ["How do I bake sourdough bread?", "What is the boiling point of mercury?"])
def test_off_topic_questions_are_declined_without_a_short_answer(assistant, question):
    answer = assistant.answer(question)
    assert answer.abstained and answer.short is None and not answer.citations


def test_streamed_text_is_the_answer_text(assistant):
    items = list(assistant.stream("Who built the harbour of Pellmore?"))
    assert "".join(items[:-1]) == items[-1].text and items[-1].short


def test_the_extractive_generator_gives_no_short_answer(assistant):
    answer = assistant.with_generator("extractive").answer("Who built the harbour of Pellmore?")
    assert answer.generator == "extractive" and answer.short is None and "Agatha Brindle" in answer.text
    assert all(c.answer_start is None for c in answer.citations)


def test_and_inside_a_question_is_no_follow_up():
    """A question naming two things ("Putin and Pezeshkian") stands alone; the reader reads one question."""
    history = [("Why might Russia not send S-400s?", "Because. [1]")]
    assert (
        standalone_query("Where are Putin and Pezeshkian meeting?", history)
        == "Where are Putin and Pezeshkian meeting?"
    )
    assert standalone_query("And Iran?", history).startswith("Why might Russia")
