"""The generator contract without a model: the follow-up heuristic every generator inherits, and the
fallback wrapper around an LLM that fails (fake chat models, scripted failures)."""

from __future__ import annotations

import httpx
import openai
from fakes import RaisingFake, fake

from assistant.errors import GenerationError
from assistant.generation import Generator, create_generator, standalone_query, with_fallback
from assistant.generation.fallback import FallbackGenerator
from assistant.generation.llm import OpenAIGenerator
from assistant.grounding.grounded import GroundedGenerator
from assistant.schema import Chunk, Draft, Passage
from assistant.settings import Settings

URL = "http://llm.test:9/v1"
KEY = "sk-test-KEY-0123456789"
HISTORY = [("Who said Russia wouldn't want to antagonise Israel?", "Stephen Hall [1].")]
PASSAGES = [
    Passage(Chunk("a", "a.txt", "Stephen Hall teaches Russian politics at Bath. He spoke on Friday.", 0, 60), 0.9),
    Passage(Chunk("b", "b.txt", "Putin met Pezeshkian in Ashgabat.", 0, 33), 0.5),
]


class Quoting(Generator):
    """Stands in for the extractive generator: quotes the first sentence of the first passage."""

    name = "quoting"

    def generate(self, question: str, passages: list[Passage]) -> Draft:
        if not passages:
            return Draft("I could not find this in the documents.", abstained=True)
        first = passages[0].chunk.text.split(". ")[0] + "."
        return Draft(f"{first} [1]", quotes={1: first})


class BreaksMidway(Generator):
    """An LLM whose connection drops after two words."""

    name = "flaky"

    def generate(self, question, passages):
        raise GenerationError(f"Could not connect to the language model at {URL}.")

    def stream(self, question, passages):
        yield "Stephen "
        yield "Hall [2"
        raise GenerationError(f"Could not connect to the language model at {URL}.")


def down() -> OpenAIGenerator:
    error = openai.APIConnectionError(request=httpx.Request("POST", URL + "/chat/completions"))
    return OpenAIGenerator(url=URL, api_key=KEY, llm=RaisingFake(messages=iter([]), error=error))


def test_follow_up_heuristic_is_every_generators_default():
    assert standalone_query("Who is he?", HISTORY) == f"{HISTORY[0][0]} Who is he?"
    assert standalone_query("And Iran?", HISTORY) == f"{HISTORY[0][0]} And Iran?"  # short: carried over
    question = "Which weapons has Iran been supplying to the Russian army recently?"
    assert standalone_query(question, HISTORY) == question  # stands on its own
    assert standalone_query("Who is he?", []) == "Who is he?"
    assert Quoting().condense("Who is he?", HISTORY) == standalone_query("Who is he?", HISTORY)


def test_default_stream_yields_the_words_then_the_draft():
    *deltas, draft = Quoting().stream("Who?", PASSAGES)
    assert len(deltas) > 1 and "".join(deltas) == draft.text
    assert draft == Quoting().generate("Who?", PASSAGES)


def test_failing_llm_gives_the_fallback_draft_with_a_warning_naming_the_url_not_the_key():
    wrapped = FallbackGenerator(down(), Quoting())
    expected = Quoting().generate("Who is Stephen Hall?", PASSAGES)
    draft = wrapped.generate("Who is Stephen Hall?", PASSAGES)
    *deltas, streamed = wrapped.stream("Who is Stephen Hall?", PASSAGES)
    for d in (draft, streamed):
        assert (d.text, d.quotes, d.generator) == (expected.text, expected.quotes, "quoting")
        assert URL in d.warning and "quoting answer instead" in d.warning and KEY not in d.warning
    assert "".join(deltas) == expected.text  # nothing was shown before the failure: no gap either
    assert wrapped.name == "openai"


def test_failure_mid_stream_sets_the_fallback_answer_apart():
    *deltas, draft = FallbackGenerator(BreaksMidway(), Quoting()).stream("Who?", PASSAGES)
    text = "".join(deltas)
    assert text.startswith("Stephen Hall [2\n\n") and text.endswith(draft.text)
    assert draft.generator == "quoting" and URL in draft.warning


def test_working_llm_is_used_as_is():
    llm = fake("Hall said so [1].", "Hall said so [1].")
    wrapped = with_fallback(OpenAIGenerator(url=URL, llm=llm), Quoting())
    assert wrapped.generate("Who?", PASSAGES) == Draft("Hall said so [1].")
    *deltas, draft = wrapped.stream("Who?", PASSAGES)
    assert draft == Draft("Hall said so [1].") and "".join(deltas) == draft.text


def test_no_passages_never_asks_the_llm():
    llm = fake("unused")
    wrapped = FallbackGenerator(OpenAIGenerator(url=URL, llm=llm), Quoting())
    draft = wrapped.generate("Who?", [])
    assert draft.abstained and draft.generator == "quoting" and draft.warning is None
    assert list(wrapped.stream("Who?", []))[-1] == draft
    assert llm.seen == []


def test_condense_uses_the_llm_rewrite_else_the_heuristic():
    rewrite = FallbackGenerator(OpenAIGenerator(url=URL, llm=fake("Who is Stephen Hall?")), Quoting())
    assert rewrite.condense("Who is he?", HISTORY) == "Who is Stephen Hall?"
    echo = FallbackGenerator(OpenAIGenerator(url=URL, llm=fake("Who is he?")), Quoting())
    assert echo.condense("Who is he?", HISTORY) == standalone_query("Who is he?", HISTORY)
    assert FallbackGenerator(down(), Quoting()).condense("Who is he?", HISTORY) == standalone_query(
        "Who is he?", HISTORY
    )


def test_generator_names_build_wrapped_generators():
    fallback = Quoting()
    assert create_generator(Settings(generator="extractive"), fallback=fallback) is fallback
    llm = create_generator(Settings(generator="openai", llm_url=URL), fallback=fallback)
    assert isinstance(llm, FallbackGenerator) and llm.name == "openai" and llm.fallback is fallback
    assert with_fallback(llm, fallback) is llm and with_fallback(fallback, fallback) is fallback


def test_a_grounder_wraps_only_the_llm():
    fallback, grounder = Quoting(), object()  # never called here: the structure alone is checked
    assert create_generator(Settings(generator="extractive"), fallback=fallback, grounder=grounder) is fallback
    llm = create_generator(Settings(generator="openai", llm_url=URL), fallback=fallback, grounder=grounder)
    assert isinstance(llm, FallbackGenerator) and isinstance(llm.primary, GroundedGenerator)
    assert llm.primary.grounder is grounder and llm.name == llm.primary.name == "openai"
    assert not isinstance(with_fallback(OpenAIGenerator(url=URL), fallback).primary, GroundedGenerator)
