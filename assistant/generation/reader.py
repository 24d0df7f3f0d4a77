"""The default generator: a trained span reader finds the exact words, the passage's sentence backs them.

Sentence scoring can tell which sentence is *about* a question, not which words *answer* it ("Who
said …?" is answered by a name in the next sentence). The reader (`assistant.reading.Reader`, a
MiniLM span model trained by `python -m training.train`) reads every retrieved passage and
points at the best span, with a calibrated probability that it answers the question. The answer
leads with those words, then the sentence(s) that hold them, cited:

    Stephen Hall — "…said Stephen Hall, an assistant professor … told The Telegraph." [1]

Three outcomes, decided by `decline.decide` from two calibrated probabilities (see `generation/decline.py`):
the evidence model's (does any passage speak of this at all?) and the reader's answer probability (do
these exact words answer it?):

- decline, when the evidence is weak (the extractive rules and model, unchanged: off-topic questions
  stay declined) or the evidence is middling and the reader finds nothing;
- the cited sentences without short words (`Answer.short` None), when the passages speak of it but
  the reader is not sure of a span: the extractive answer;
- the short answer and its sentence, when the reader is sure enough.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from assistant.generation.base import DECLINE_TEXT, Candidate, Generator, standalone_query
from assistant.generation.decline import (
    DEFAULT_THRESHOLDS,
    Thresholds,
    Verdict,
    decide,
    declines_unread,
    is_named,
    no_answer_probability,
    usable_probability,
)
from assistant.generation.extractive import ExtractiveGenerator, one_line
from assistant.ingest.chunking import sentences
from assistant.reading import AnswerSpan, Reader
from assistant.schema import Draft, Passage, ShortAnswer

SEPARATOR = " — "  # between the short answer and its sentence; `lead_of` reads it back from history
MAX_SUPPORT = 2  # other sentences after the one holding the short answer
MAX_GAP = 400  # characters between two sentences of one passage that are quoted as one stretch

_PRONOUN = re.compile(r"\b(he|she|they|him|them|it|his|their|its|her)\b(\s+\w)?", re.IGNORECASE)
_POSSESSIVE = {"his", "their", "its"}


class ReaderGenerator(Generator):
    """Answers with the exact words a trained span reader finds, then the cited sentence holding them.

    Args:
        reader: The span reader (loaded on first use; `warm_up()` loads it now).
        evidence: The extractive generator: its evidence model decides declining, its answer is the
            one given when the reader is not sure of a span.
        thresholds: Where `decline.decide` draws its lines (the ones saved with the reader model:
            `Thresholds.load(model_dir)`).
    """

    name = "reader"

    def __init__(
        self, reader: Reader, evidence: ExtractiveGenerator, thresholds: Thresholds = DEFAULT_THRESHOLDS
    ) -> None:
        self.reader = reader
        self.evidence = evidence
        self.thresholds = thresholds

    def warm_up(self) -> None:
        """Load the reader model now (raises `ReaderError` naming a missing or corrupt file)."""
        self.reader.warm_up()

    def judge(self, question: str, passages: list[Passage]) -> tuple[Verdict, AnswerSpan | None, list[Candidate]]:
        """The verdict, the span chosen (None when the reader did not read) and the ranked sentences."""
        ranked, evidence = self.evidence.analyse(question, passages)
        no_answer = no_answer_probability(evidence)
        named = is_named(evidence)
        if not ranked or declines_unread(no_answer, named, self.thresholds):
            return Verdict("decline", no_answer, 0.0), None, ranked
        result = self.reader.read(question, [p.chunk.text for p in passages])
        best = pick(result.spans, passages, self.thresholds.retrieval_weight)
        verdict = decide(no_answer, usable_probability(best), named=named, at=self.thresholds)
        return verdict, best, ranked

    def generate(self, question: str, passages: list[Passage]) -> Draft:
        verdict, best, ranked = self.judge(question, passages)
        if verdict.action == "decline":
            return Draft(DECLINE_TEXT, abstained=True)
        if verdict.action == "sentences" or best is None:
            return self.evidence.compose(ranked, passages, question)
        return compose_short(short_answer(best), passages, self.evidence.choose(ranked))

    def condense(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        """Like the default heuristic, but a follow-up that points back with a pronoun ("Where does he
        teach?") gets the previous short answer in its place ("Where does Stephen Hall teach?"), which
        both retrieval and the reader read better than two questions run together."""
        if history and (short := lead_of(history[-1][1])):
            replaced = refer(question, short)
            if replaced != question:
                return replaced
        return standalone_query(question, history)


def span_score(probability: float, cosine: float, weight: float) -> float:
    """How good a passage's best span is, all passages compared: the reader's log-odds plus `weight`
    × the passage's cosine to the question. The reader reads each passage on its own, so a name in a
    passage barely about the question can outscore the right name in the passage that is; the
    retriever's view breaks such ties (the classic retriever + reader score interpolation)."""
    p = min(max(probability, 1e-6), 1.0 - 1e-6)
    return math.log(p / (1.0 - p)) + weight * cosine


def pick(spans: list[AnswerSpan], passages: list[Passage], weight: float) -> AnswerSpan | None:
    """The span with the best `span_score` (None without spans)."""
    return max(spans, key=lambda s: span_score(s.probability, passages[s.passage_index].dense, weight), default=None)


def compose_short(short: ShortAnswer, passages: list[Passage], support: list[Candidate]) -> Draft:
    """The short answer, then the sentence(s) that hold it, then the extractive answer's other sentences.

    The other sentences (at most `MAX_SUPPORT`, the ones the extractive generator would answer with)
    back the short answer up, and still hold the answer when the reader chose the wrong words. Each
    passage is quoted as one stretch, so a sentence far from the rest of its passage's quote is left out.

    Args:
        short: The exact words and where they are (1-based passage, offsets in its text).
        passages: The passages the reader read.
        support: The extractive generator's chosen sentences (`ExtractiveGenerator.choose`).
    """
    text = passages[short.passage - 1].chunk.text
    lo, hi = holding(text, short.start, short.end)
    parts = [f"{short.text}{SEPARATOR}{one_line(text[lo:hi])} [{short.passage}]"]
    quoted = {short.passage: (lo, hi)}
    for c in support:
        if len(parts) > MAX_SUPPORT:
            break
        at = quoted.get(c.passage)
        if at is not None and (c.start < at[1] and c.end > at[0]):
            continue  # already quoted
        if at is not None and _far(passages[c.passage - 1].chunk.text, at, c):
            continue  # too far from the rest of the passage's quote
        quoted[c.passage] = (min(at[0], c.start), max(at[1], c.end)) if at else (c.start, c.end)
        parts.append(f"{one_line(c.text)} [{c.passage}]")
    quotes = {n: passages[n - 1].chunk.text[a:b] for n, (a, b) in quoted.items()}
    return Draft(" ".join(parts), abstained=False, quotes=quotes, short=short)


def _far(text: str, quoted: tuple[int, int], c: Candidate) -> bool:
    """Whether a sentence is too far from a passage's quote to join it: another paragraph, or over `MAX_GAP`."""
    lo, hi = (quoted[1], c.start) if c.start >= quoted[1] else (c.end, quoted[0])
    return hi - lo > MAX_GAP or "\n\n" in text[lo:hi]


def holding(text: str, start: int, end: int) -> tuple[int, int]:
    """The range of the sentence(s) of `text` that overlap `[start, end)` (the span itself if none do)."""
    spans = [s for s in sentences(text) if s.start < end and s.end > start]
    if not spans:
        return start, end
    return min(start, spans[0].start), max(end, spans[-1].end)


def lead_of(answer_text: str) -> str | None:
    """The short answer an earlier answer led with (the words before `SEPARATOR`), or None."""
    head, sep, _ = answer_text.partition(SEPARATOR)
    head = head.strip()
    if not sep or not head or "\n" in head or "[" in head or len(head.split()) > 12 or head[-1] in ".!?":
        return None
    return head


def refer(question: str, short: str) -> str:
    """The question with its first pronoun replaced by `short` ("his" → "Stephen Hall's")."""
    m = _PRONOUN.search(question)
    if m is None:
        return question
    word = m.group(1).lower()
    possessive = word in _POSSESSIVE or (word == "her" and m.group(2) is not None)
    name = f"{short}'s" if possessive else short
    return question[: m.start(1)] + name + question[m.end(1) :]


def short_answer(span: AnswerSpan) -> ShortAnswer:
    """The reader's span as the pipeline's `ShortAnswer`: 1-based passage, without surrounding whitespace."""
    start = span.start + len(span.text) - len(span.text.lstrip())
    text = span.text.strip()
    return ShortAnswer(text, span.passage_index + 1, start, start + len(text))
