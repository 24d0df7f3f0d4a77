"""Why/how answers lead with the reason, and leave out sentences of passages far below the best."""

from __future__ import annotations

import re

from assistant.generation.base import Candidate
from assistant.generation.reasons import arrange, gives_reason
from assistant.schema import Chunk, Passage


def _passage(text: str, score: float) -> Passage:
    return Passage(Chunk(f"id-{score}", "doc.txt", text, 0, len(text), None), score)


def _candidate(passage: int, text: str, score: float) -> Candidate:
    return Candidate(passage, 0, 0, len(text), text, 0.5, 0.5, score)


def test_the_reason_leads_and_a_far_less_relevant_passage_is_left_out():
    demand = "Iran has asked Russia for S-400 air defence systems."
    reason = "But Russia wouldn't want to antagonise Israel, an analyst said."
    drone = "Iran has supplied drones to Russia."
    passages = [_passage(demand, 1.0), _passage(reason, 0.8), _passage(drone, 0.07)]
    chosen = [_candidate(1, demand, 0.9), _candidate(2, reason, 0.8), _candidate(3, drone, 0.7)]
    arranged = arrange("Why might Russia not send S-400s to Iran?", chosen, passages)
    assert [c.text for c in arranged] == [reason, demand]
    # Not a why/how question: the order stays, only the far passage goes.
    assert [c.text for c in arrange("What did Iran ask for?", chosen, passages)] == [demand, reason]


def test_a_how_question_leads_with_the_way_and_polarity_counts_for_why_not():
    assert gives_reason("How is the wall rebuilt?", "The wall is rebuilt by pouring concrete into caissons.")
    assert not gives_reason("How is the wall rebuilt?", "The wall is old.")
    assert not gives_reason("Why did he not go?", "He went because it rained.")
    assert gives_reason("Why did he not go?", "He did not go because it rained.")
    assert not gives_reason("How many walls are there?", "There are walls by the sea.")


def test_the_seed_answer_to_why_leads_with_the_reason(seed_assistant):
    answer = seed_assistant.answer("Why might Russia not send S-400s to Iran?")
    first = re.split(r"\[\d+\]", answer.text)[0]
    assert not answer.abstained and "Israel" in first, answer.text
    assert all(c.score >= 0.25 * max(x.score for x in answer.citations) for c in answer.citations)
