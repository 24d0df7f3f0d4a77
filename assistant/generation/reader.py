"""The default generator: a trained span reader finds the exact words, the passage's sentence backs them.

Sentence scoring can tell which sentence is *about* a question, not which words *answer* it ("Who
said …?" is answered by a name in the next sentence). The reader (`assistant.reading.Reader`, a
MiniLM span model trained by `python -m training.train`) reads every retrieved passage and
points at the best span, with a calibrated probability that it answers the question. The answer
leads with those words, then the sentence(s) that hold them, cited:

    Stephen Hall — "…said Stephen Hall, an assistant professor … told The Telegraph." [1]

Three outcomes, decided by `decide` from two calibrated probabilities (see `bench/calibrate_reader.py`):
the extractive generator's evidence model (does any passage speak of this at all?) and the reader's
answer probability (do these exact words answer it?):

- decline, when the evidence is weak (the extractive rules and model, unchanged: off-topic questions
  stay declined) or the evidence is middling and the reader finds nothing;
- the cited sentences without short words (`Answer.short` None), when the passages speak of it but
  the reader is not sure of a span: the extractive answer;
- the short answer and its sentence, when the reader is sure enough.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from assistant.generation import DECLINE_TEXT, Generator, standalone_query
from assistant.generation.extractive import Candidate, ExtractiveGenerator
from assistant.ingest.chunking import sentences
from assistant.reading import AnswerSpan, Reader
from assistant.schema import Draft, Passage, ShortAnswer

SEPARATOR = " — "  # between the short answer and its sentence; `lead_of` reads it back from history

# Calibrated on the 8 SQuAD v2 dev articles the reader never trained on, through the whole pipeline
# (bench/calibrate_reader.py; every fold leaving one article out chose the same SHORT_AT, DECLINE_AT
# and DOUBT_AT).
SHORT_AT = 0.5  # reader answer probability at or above which the exact words lead the answer
DECLINE_AT = 0.75  # the extractive evidence model's "no answer" probability that declines on its own
DOUBT_AT = 0.3  # ... that declines when the reader also finds no span
NO_SPAN_BELOW = 0.1  # reader answer probability under which "the reader finds no span"
RETRIEVAL_WEIGHT = 1.0  # span choice: logit(reader probability) + this × passage cosine
MAX_SHORT_CHARS = 200  # a longer "span" is a passage, not a short answer: shown as sentences only
MAX_SUPPORT = 2  # other sentences after the one holding the short answer
MAX_GAP = 400  # characters between two sentences of one passage that are quoted as one stretch

_PRONOUN = re.compile(r"\b(he|she|they|him|them|it|his|their|its|her)\b(\s+\w)?", re.IGNORECASE)
_POSSESSIVE = {"his", "their", "its"}


@dataclass(frozen=True)
class Verdict:
    """What `decide` made of one question: decline, answer with sentences, or lead with the short answer."""

    action: Literal["decline", "sentences", "short"]
    no_answer: float  # the evidence model's probability that the passages do not answer
    answer_probability: float  # the reader's probability that its best span answers


@dataclass(frozen=True)
class Thresholds:
    """Where `decide` draws its lines (calibrated by bench/calibrate_reader.py).

    Args:
        short_at: Lead with the exact words at or above this reader probability.
        decline_at: Decline on the evidence alone at or above this "no answer" probability (unless named).
        doubt_at: Decline at or above this when the reader's probability is under `no_span_below`.
        no_span_below: The reader probability under which "the reader finds no span".
        retrieval_weight: How much the passage's cosine to the question counts when choosing among
            the passages' spans (see `span_score`).
    """

    short_at: float = SHORT_AT
    decline_at: float = DECLINE_AT
    doubt_at: float = DOUBT_AT
    no_span_below: float = NO_SPAN_BELOW
    retrieval_weight: float = RETRIEVAL_WEIGHT


def decide(
    no_answer: float, answer_probability: float, *, named: bool = False, at: Thresholds = Thresholds()
) -> Verdict:
    """The outcome from the two probabilities (pure, so it can be tested and calibrated without a model).

    Args:
        no_answer: The extractive evidence model's probability of "no answer" (1.0 for its hard rules).
        answer_probability: The reader's calibrated probability that its best span answers.
        named: The question names something (a capitalised name, a number) and the passages contain
            every such name. Weak evidence then declines only when the reader is not sure of a span:
            a long passage embeds far from a short question about one detail of it ("Which newspaper
            did Stephen Hall speak to?"), while an off-topic question rarely names what the passages hold.
        at: The thresholds.
    """
    if no_answer >= at.decline_at:
        sure = named and answer_probability >= at.short_at
        return Verdict("short" if sure else "decline", no_answer, answer_probability)
    if no_answer >= at.doubt_at and answer_probability < at.no_span_below:
        return Verdict("decline", no_answer, answer_probability)
    action = "short" if answer_probability >= at.short_at else "sentences"
    return Verdict(action, no_answer, answer_probability)


class ReaderGenerator(Generator):
    """Answers with the exact words a trained span reader finds, then the cited sentence holding them.

    Args:
        reader: The span reader (loaded on first use; `preload()` starts that early).
        evidence: The extractive generator: its evidence model decides declining, its answer is the
            one given when the reader is not sure of a span.
        thresholds: See `decide`.
    """

    name = "reader"

    def __init__(self, reader: Reader, evidence: ExtractiveGenerator, thresholds: Thresholds = Thresholds()) -> None:
        self.reader = reader
        self.evidence = evidence
        self.thresholds = thresholds
        self._lock = threading.Lock()
        self._loader: threading.Thread | None = None

    def preload(self) -> None:
        """Load the reader model in the background, once (a missing model is raised by the first answer)."""
        with self._lock:
            if self._loader is None:
                self._loader = threading.Thread(target=self._warm_quietly, name="reader-load", daemon=True)
                self._loader.start()

    def _warm_quietly(self) -> None:
        try:
            self.reader.warm_up()
        except Exception:  # the foreground `read` raises it again, with its own stack
            pass

    def judge(self, question: str, passages: list[Passage]) -> tuple[Verdict, AnswerSpan | None, list[Candidate]]:
        """The verdict, the span chosen (None when the reader did not read) and the ranked sentences."""
        ranked, evidence = self.evidence.analyse(question, passages)
        no_answer = self.evidence.no_answer_probability(evidence)
        named = is_named(evidence)
        if not ranked or (no_answer >= self.thresholds.decline_at and not named):
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


def usable_probability(span: AnswerSpan | None) -> float:
    """The span's answer probability, or 0 when it is no short answer (none, empty, or a passage)."""
    if span is None or not span.text.strip() or len(span.text.strip()) > MAX_SHORT_CHARS:
        return 0.0
    return span.probability


def is_named(evidence: dict[str, float]) -> bool:
    """Whether the question names something and the passages contain every such name (see `decide`)."""
    return evidence.get("names", 0.0) >= 1 and evidence.get("missing_names", 1.0) == 0.0


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
    parts = [f"{short.text}{SEPARATOR}{_clean(text[lo:hi])} [{short.passage}]"]
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
        parts.append(f"{_clean(c.text)} [{c.passage}]")
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


def _clean(text: str) -> str:
    return " ".join(text.split())
