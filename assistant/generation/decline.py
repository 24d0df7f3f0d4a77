"""The one decision to decline, and the one set of thresholds it uses.

Whether the documents answer a question is judged from two calibrated probabilities:

- the evidence model's "no answer" probability (`no_answer_probability`): does any retrieved passage
  speak of this at all? A small logistic model over the extractive generator's evidence features,
  framed by three rules (see below);
- the span reader's answer probability (`usable_probability`): do these exact words answer it?

`decide` turns them into one of three outcomes: decline, answer with cited sentences, or lead with
the reader's short answer. The extractive generator, which has no reader, uses the evidence half
alone (`decide_on_evidence`). Where the lines are drawn (`Thresholds`) is calibrated through the whole
pipeline by `bench/calibrate_reader.py` and saved with the reader model, in the `thresholds` section of
its `config.json` (as an index keeps its own configuration beside it), so a retrained model carries
its own thresholds; `Thresholds.load` reads them from there.

Beside the two probabilities, `unstated` declines an answer that does not say the kind of fact asked
(a date of birth, a cost) although its passages name what the question is about.

An LLM declines in words; `says_not_found` is the one detector of those words, used both when the
LLM's reply is read (`prompts.is_abstention`) and when its sentences are checked (`claims`).

The evidence model is fitted by `bench/calibrate_abstain.py` on a seeded sample of 1,500 SQuAD v2 dev
questions (it prints `COEF` and `INTERCEPT`). SQuAD v2's unanswerable questions are adversarial (same
topic, one detail changed), so only a slice of them can be told apart without refusing real questions,
and every answerable question declined costs answer recall: `decline_at` (0.75) is the lowest that
declines at most 4 % of the answerable questions of the sample (an earlier 0.68 declined 9.7 %, answer
recall -0.045). Three rules frame the model: a question whose weighted terms the passages barely
mention (under `MIN_PASSAGE_COVERAGE`), or whose best passage has a cosine under `MIN_PASSAGE_COSINE`
(nothing retrieved is even loosely about it: off-topic), is declined outright; a short one (at most
`PLAIN_TERMS` content terms) whose terms all occur in one sentence or two adjacent ones is answered,
since a bare name embeds poorly but is plainly there.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from assistant.errors import ReaderError
from assistant.schema import Draft, Passage

if TYPE_CHECKING:
    from assistant.reading import AnswerSpan

# -- the evidence model (bench/calibrate_abstain.py) ---------------------------------------------
# P(no answer) = sigmoid(INTERCEPT + sum(COEF[f] * feature f)).
FEATURES = ("score", "cosine", "coverage", "passage_coverage", "missing_names", "margin", "passage_cosine")
COEF = {
    "score": 0.5685,
    "cosine": -2.5667,
    "coverage": -1.6713,
    "passage_coverage": 0.6783,
    "missing_names": -0.4882,
    "margin": 0.0512,
    "passage_cosine": -1.6776,
}
INTERCEPT = 2.7715
PLAIN_TERMS = 3  # a question with at most this many content terms, all in one or two adjacent sentences: answer
MIN_PASSAGE_COVERAGE = 0.15  # below this share of the question's (weighted) terms in any passage: decline
# No passage even loosely about the question (off-topic): decline. 0.4 % of answerable SQuAD questions
# fall below it, all of them declined by the model anyway; 13 of the 24 off-topic checks do.
MIN_PASSAGE_COSINE = 0.2
MAX_SHORT_CHARS = 200  # a longer "span" is a passage, not a short answer: shown as sentences only

CONFIG_FILE = "config.json"
SECTION = "thresholds"


@dataclass(frozen=True)
class Thresholds:
    """Where `decide` draws its lines; saved in the reader model's config.json (`SECTION`).

    The defaults are the shipped model's (bench/calibrate_reader.py on the 8 SQuAD v2 dev articles the
    reader never trained on; every fold leaving one article out chose the same `short_at`, `decline_at`
    and `doubt_at`).

    Args:
        short_at: Lead with the exact words at or above this reader probability (the one "sure span" line).
        decline_at: Decline on the evidence alone at or above this "no answer" probability (unless named).
        doubt_at: Decline at or above this when the reader's probability is under `no_span_below`.
        no_span_below: The reader probability under which "the reader finds no span".
        retrieval_weight: How much the passage's cosine to the question counts when choosing among
            the passages' spans (see `generation.reader.span_score`).
    """

    short_at: float = 0.5
    decline_at: float = 0.75
    doubt_at: float = 0.3
    no_span_below: float = 0.1
    retrieval_weight: float = 1.0

    @classmethod
    def load(cls, model_dir: str | Path) -> Thresholds:
        """The thresholds saved with the reader model in `model_dir` (its config.json's `thresholds`).

        Raises:
            ReaderError: the config is missing or unreadable, or its thresholds section is malformed.
        """
        path = Path(model_dir) / CONFIG_FILE
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ReaderError(f"reader model file is missing: {path}") from None
        except (OSError, ValueError) as exc:
            raise ReaderError(f"reader model file is corrupt or unreadable: {path} ({type(exc).__name__})") from None
        section = config.get(SECTION) if isinstance(config, dict) else None
        if not isinstance(section, dict):
            raise ReaderError(f"reader model config has no '{SECTION}' section: {path} (run bench/calibrate_reader.py)")
        names = {f.name for f in fields(cls)}
        try:
            return cls(**{k: float(v) for k, v in section.items() if k in names})
        except (TypeError, ValueError):
            raise ReaderError(f"reader model config has a malformed '{SECTION}' section: {path}") from None

    def save(self, model_dir: str | Path) -> None:
        """Write these thresholds into `model_dir`'s config.json, keeping everything else in it."""
        path = Path(model_dir) / CONFIG_FILE
        config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        config[SECTION] = asdict(self)
        path.write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")


DEFAULT_THRESHOLDS = Thresholds()  # the shipped model's (a generator built without a model's own)


@dataclass(frozen=True)
class Verdict:
    """What `decide` made of one question: decline, answer with sentences, or lead with the short answer."""

    action: Literal["decline", "sentences", "short"]
    no_answer: float  # the evidence model's probability that the passages do not answer
    answer_probability: float  # the reader's probability that its best span answers


def no_answer_probability(evidence: dict[str, float]) -> float:
    """The evidence model's probability that the passages do not answer (1.0 or 0.0 for its rules).

    Args:
        evidence: The features `ExtractiveGenerator.analyse` measures (empty: nothing to read).
    """
    if not evidence or evidence["passage_coverage"] < MIN_PASSAGE_COVERAGE:
        return 1.0
    if evidence.get("terms", 99) <= PLAIN_TERMS and evidence.get("pair_coverage", 0.0) >= 0.999:
        return 0.0  # a short question whose every term the passages contain ("Who is <name>?")
    if evidence["passage_cosine"] < MIN_PASSAGE_COSINE:
        return 1.0
    z = INTERCEPT + sum(COEF[f] * evidence[f] for f in FEATURES)
    return 1.0 / (1.0 + math.exp(-z))


def is_named(evidence: dict[str, float]) -> bool:
    """Whether the question names something and the passages contain every such name (see `decide`)."""
    return evidence.get("names", 0.0) >= 1 and evidence.get("missing_names", 1.0) == 0.0


def usable_probability(span: AnswerSpan | None) -> float:
    """The span's answer probability, or 0 when it is no short answer (none, empty, or a passage)."""
    if span is None or not span.text.strip() or len(span.text.strip()) > MAX_SHORT_CHARS:
        return 0.0
    return span.probability


def declines_unread(no_answer: float, named: bool, at: Thresholds) -> bool:
    """Whether the evidence alone declines, whatever the reader would find (so it need not read)."""
    return no_answer >= at.decline_at and not named


def decide(
    no_answer: float, answer_probability: float, *, named: bool = False, at: Thresholds = Thresholds()
) -> Verdict:
    """The outcome from the two probabilities (pure, so it can be tested and calibrated without a model).

    Args:
        no_answer: The evidence model's probability of "no answer" (1.0 for its hard rules).
        answer_probability: The reader's calibrated probability that its best span answers.
        named: The question names something (a capitalised name, a number) and the passages contain
            every such name. Weak evidence then declines only when the reader is sure of a span:
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


def decide_on_evidence(no_answer: float, at: Thresholds = Thresholds()) -> Verdict:
    """The outcome without a reader (the extractive generator): decline, or answer with sentences."""
    return Verdict("decline" if no_answer >= at.decline_at else "sentences", no_answer, 0.0)


# -- an LLM that declines in words ---------------------------------------------------------------
# The fixed decline wording and its close paraphrases: an abstention wherever it stands.
_NOT_FOUND_EXACT = re.compile(
    r"\b(?:could|can|did)\s*(?:not|n[’']t)\s+(?:find|locate)\b[^.\n]{0,60}?\b(?:in|from)\s+the\s+"
    r"(?:provided\s+|given\s+)?(?:documents?|passages?|sources?|texts?|context)",
    re.IGNORECASE,
)
# Looser wordings small models write: an abstention only when nothing is cited (a cited sentence that
# mentions a gap is an answer).
_NOT_FOUND_LOOSE = re.compile(
    r"\bnot\s+(?:found\s+|mentioned\s+|stated\s+|specified\s+|given\s+|provided\s+|present\s+|addressed\s+)?"
    r"in\s+the\s+(?:provided\s+|given\s+)?(?:documents?|passages?|sources?|texts?|context)"
    r"|\bnot\s+(?:found|mentioned|stated|specified|given|provided|present|addressed)\s+in\s+the\s+"
    r"|\b(?:documents?|passages?|sources?|texts?|context)\s+(?:do|does|did)\s*(?:not|n[’']t)\s+"
    r"(?:contain|mention|say|state|specify|include|provide|answer|give)"
    r"|\bno\s+(?:information|mention|details?)\s+(?:about|on|of|regarding)\b"
    r"|\b(?:I\s+(?:do\s+not|don[’']t)\s+know|cannot\s+(?:be\s+)?(?:answer|determine)(?:ed)?)\b",
    re.IGNORECASE,
)


def says_not_found(text: str, *, cited: bool = False) -> bool:
    """Whether `text` says the documents do not hold the answer.

    Args:
        text: An LLM's reply, or one sentence of it.
        cited: The text cites a passage; loose wordings then do not count.
    """
    return bool(_NOT_FOUND_EXACT.search(text)) or (not cited and bool(_NOT_FOUND_LOOSE.search(text)))


# -- what the answer must state ----------------------------------------------------------------
# "When was Jade Maloney born?" over slides that name Jade Maloney: retrieval finds her name and the
# reader, asked for a date, returns the best span it can, her name. The passages are about the person,
# so no relevance threshold catches it; what is missing is the thing asked. `unstated` declines when a
# when/where/how/why question is answered with a name it already names, or when the question asks for a
# kind of fact that words must state (a birth or death date, a cost, an age, a year, a quantity) and no
# quoted sentence states that kind of fact. The pipeline applies it where the answer is assembled.

_WORD = re.compile(r"\w+")
_YEAR_OR_DATE = (
    r"\b(?:1[0-9]\d\d|20\d\d|\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\w*"
    r"|(?:january|february|march|april|may|june|july|august|september|october|november|december)\b)"
)
_MONEY = r"[$€£¥]|\b(?:usd|eur|gbp|dollars?|euros?|pounds?|cents?|yen|francs?|marks?|rubles?|rupees?)\b"
_NUMBER = (  # a count in digits or in words ("seventeen", "forty-two", "a dozen")
    r"\b\d[\d,.]*\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen"
    r"|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
    r"|hundreds?|thousands?|millions?|billions?|dozens?|score)\b"
)

# What a question asks (a pattern on the question) → what a sentence must contain to say it.
_ASKS: list[tuple[re.Pattern, re.Pattern]] = [
    (
        re.compile(r"\bborn\b|\bbirth(?:day|date| date| place)?\b", re.I),
        re.compile(r"\bborn\b|\bbirth|\bb\.\s|\bnée\b|\(\s*(?:b\.\s*)?\d{4}\s*[–-]", re.I),
    ),
    (
        re.compile(r"\b(?:die|died|death|pass(?:ed)? away)\b", re.I),
        re.compile(r"\b(?:died|dies|death|dead|killed|passed away|d\.)\b|[–-]\s*\d{4}\s*\)", re.I),
    ),
    (
        re.compile(r"\b(?:cost|costs|price|priced|paid|pay|spend|spent|budget|worth|salary|earn|earns|charge)\b", re.I),
        re.compile(
            rf"{_MONEY}|\b(?:cost|costs|price|priced|paid|budget|worth|salary|fees?|free|funded|funding|spent)\b", re.I
        ),
    ),
    (
        re.compile(r"\bhow\s+old\b|\bwhat\s+age\b|\bage\s+of\b", re.I),
        re.compile(r"\b(?:age|aged|old|years?)\b|\b\d{1,3}\b", re.I),
    ),
    (
        re.compile(r"\b(?:how\s+many|how\s+much|what\s+(?:number|percentage|amount))\b", re.I),
        re.compile(rf"{_NUMBER}|%|\b(?:percent|per cent|none|no|all|every|several|few|many|most|half)\b", re.I),
    ),
    (
        re.compile(r"\bwhat\s+year\b|\bwhat\s+date\b|\bwhich\s+year\b|\bin\s+what\s+year\b", re.I),
        re.compile(_YEAR_OR_DATE + r"|\b\d{2,4}s?\b|\bcentury\b", re.I),
    ),
]
_CHOICE = re.compile(r"\bor\b", re.I)
# Questions whose answer is a time, place, amount or reason: never the name they ask about.
_NOT_A_NAME = re.compile(r"^\W*(?:and\s+)?(?:when|where|how|why|in what year|what year|what date)\b", re.I)
_WHEN = re.compile(r"^\W*(?:and\s+)?(?:when|in what year|what year|what date|which year)\b", re.I)


def unstated(question: str, draft: Draft, passages: list[Passage]) -> str | None:
    """Why the draft does not answer `question` although its passages mention what it asks about,
    or None when it may stand. Only a drafted answer (not a decline) with quotes is judged."""
    if draft.abstained or not question:
        return None
    quotes = [q for q in draft.quotes.values() if q]
    if draft.short is not None and _NOT_A_NAME.search(question) and not _CHOICE.search(question):
        asked = {w.lower() for w in _WORD.findall(question)}
        said = _WORD.findall(draft.short.text)
        if said and all(w.lower() in asked and w[:1].isupper() for w in said):
            return "the answer only repeats the name the question asks about"
    if not quotes:
        return None
    for i, (asks, states) in enumerate(_ASKS):
        if i < 2 and not _WHEN.search(question):
            continue  # "where did he die?" is answered by a place, said in any words
        if asks.search(question) and not any(states.search(q) for q in quotes):
            return "no quoted sentence states what the question asks"
    return None
