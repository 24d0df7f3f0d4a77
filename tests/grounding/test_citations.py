from assistant.grounding.citations import build_answer
from assistant.schema import Chunk, Draft, Passage


def _passages(n=3):
    return [
        Passage(Chunk(f"id{i}", f"doc{i}.txt", f"Fact number {i} is true. Other words {i}.", 10 * i, 10 * i + 40), 0.5)
        for i in range(1, n + 1)
    ]


def test_markers_renumbered_in_order_of_first_use_and_invalid_dropped():
    draft = Draft("Fact number 3 is true [3]. Fact number 1 is true [9] [1]. Again [3].")
    ans = build_answer(draft, _passages(), generator="openai")
    assert ans.text == "Fact number 3 is true [1]. Fact number 1 is true [2]. Again [1]."
    assert [c.n for c in ans.citations] == [1, 2]
    assert [c.source for c in ans.citations] == ["doc3.txt", "doc1.txt"]
    for c in ans.citations:
        assert c.quote in c.text


def test_quote_is_the_passage_sentence_closest_to_the_claim():
    ans = build_answer(Draft("Other words 2 [2]."), _passages(), generator="openai")
    assert ans.citations[0].quote == "Other words 2."


def test_generator_quotes_are_kept():
    p = _passages()
    ans = build_answer(Draft("X [1]", quotes={1: "Other words 1."}), p, generator="extractive")
    assert ans.citations[0].quote == "Other words 1."


def test_abstained_draft_has_no_citations():
    ans = build_answer(Draft("I could not find this in the documents.", abstained=True), _passages(), generator="x")
    assert ans.abstained and ans.citations == []
