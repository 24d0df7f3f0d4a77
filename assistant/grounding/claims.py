"""Reading an LLM answer as claims (sentences, their `[n]` markers, the names and numbers they state)
and passages as windows of sentences.

Text analysis only (no model): `Grounder` decides which passages support each claim. Kept apart so
every rule here (what a marker looks like, when a capitalised word is a name, how "$12,000" and
"12000" meet) is a small function with its own tests.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from assistant.generation.decline import says_not_found
from assistant.ingest.chunking import sentences
from assistant.terms import STOPWORDS, tokenize

# "[1]", "[1, 3]", "[1][2]", "[2-3]", "[Passage 2]": the forms models write. Leading space included.
MARKER = re.compile(r"\s*\[\s*(?:passages?\s*)?(\d{1,3}(?:\s*(?:[,;–-]|and)\s*\d{1,3})*)\s*\]", re.IGNORECASE)

# The prompt's own markup, which small models echo ("<passage n="2" source="a.txt">"): not content.
_PROMPT_TAG = r"""</?\s*passages?\b[^>\n]*>?"""
_REMOVED = re.compile(rf"(?:{MARKER.pattern})|\s*(?P<tag>{_PROMPT_TAG})", re.IGNORECASE)

CLAIM, ABSTENTION, META = "claim", "abstention", "meta"

# Words that talk about the answer rather than the world: a sentence made only of these is not a claim.
_META_WORDS = frozenset(
    tokenize(
        "according passage passages document documents text texts source sources context provided based "
        "answer answers question questions information help helps hope here following follows below above "
        "let me know feel free ask glad happy sure certainly okay ok note summary summarize summarise "
        "mentioned says stated states given find found you your we our what which who whom whose when where "
        "why how this that these those there i is are was were be"
    )
)

# "passage 2", "Document 1": the answer pointing at its sources, not stating a number.
_REFERENCE = re.compile(r"\b(?:passages?|documents?|sources?|excerpts?)\s+(?:no\.\s*)?\d{1,3}\b", re.IGNORECASE)
# A capitalised word, a number or a code ("S-400", "$12", "1,000", "300th", "Putin's").
_ENTITY = re.compile(r"[$€£¥]?\b\w[\w'’.,-]*\w%?|[$€£¥]?\b\w%?")


def _words(text: str) -> list[str]:
    return text.split()


# Capitalised words that are not names (sentence openers, pronouns, discourse words).
_COMMON = frozenset(STOPWORDS) | frozenset(
    _words(
        "i me my we our you your he she his her him they them their its it this that these those there here "
        "what who whom whose when where why how which while although though because since if unless whether "
        "also however moreover furthermore additionally overall instead meanwhile therefore thus hence so yet "
        "both either neither each every all any some many most much more less few several other another such "
        "according based given after before during until once as in on at by for from with without within "
        "about against among between into onto over under through throughout upon not no yes nor do does did "
        "is are was were be been being has have had can could may might must shall should will would "
        "first second third finally firstly secondly lastly next then today yesterday tomorrow now still "
        "one two three answer note summary sure certainly well despite unlike like regarding concerning "
        "including following due whereas along across around beyond toward towards near later earlier "
        "currently recently initially eventually ultimately generally typically usually often sometimes "
        "in_addition similarly likewise nevertheless nonetheless otherwise rather indeed actually"
    )
)
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        _words(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
            "sixteen seventeen eighteen nineteen twenty"
        )
    )
} | {w: str(10 * i) for i, w in enumerate(_words("thirty forty fifty sixty seventy eighty ninety"), start=3)}
_VAGUE_NUMBERS = frozenset(("zero", "one", "two"))  # "the two leaders": too common to check


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of an answer, markers removed; `start`/`end` locate it in the original answer."""

    text: str
    start: int
    end: int
    markers: tuple[int, ...]  # every number its markers named, in order, valid or not
    kind: str  # CLAIM, ABSTENTION or META


@dataclass(frozen=True)
class SplitAnswer:
    """An answer without markers (`clean`) and its sentences; `spans[i]` is sentence i in `clean`."""

    clean: str
    sentences: tuple[AnswerSentence, ...]
    spans: tuple[tuple[int, int], ...]


def split_answer(text: str) -> SplitAnswer:
    """Sentences of an answer with the markers each carries (a marker after the full stop counts too).

    Markers and echoed prompt markup are taken out of the sentences; `start`/`end` still point
    into the answer as given.
    """
    clean_parts: list[str] = []
    origin: list[int] = []  # clean offset -> original offset
    found: list[tuple[int, tuple[int, ...]]] = []  # (clean offset, numbers)
    pos = 0
    for m in _REMOVED.finditer(text):
        clean_parts.append(text[pos : m.start()])
        origin.extend(range(pos, m.start()))
        if not m.group("tag"):
            found.append((len(origin), marker_numbers(m.group(1))))
        pos = m.end()
    clean_parts.append(text[pos:])
    origin.extend(range(pos, len(text) + 1))
    clean = "".join(clean_parts)
    spans = [(s.start, s.end) for s in sentences(clean)]
    owned: list[list[int]] = [[] for _ in spans]
    for at, numbers in found:
        # A marker belongs to the last sentence that starts before it ("X. [1] Y." cites X).
        i = max([j for j, (s, _) in enumerate(spans) if s < at], default=0)
        if spans:
            owned[i].extend(numbers)
    out = []
    for (s, e), numbers in zip(spans, owned, strict=True):
        body = clean[s:e]
        kind = sentence_kind(body, bool(numbers))
        out.append(AnswerSentence(body, origin[s], origin[e - 1] + 1, tuple(numbers), kind))
    return SplitAnswer(clean, tuple(out), tuple(spans))


def marker_numbers(inside: str) -> tuple[int, ...]:
    """The passage numbers inside one marker: "1, 3" -> (1, 3); "2-4" -> (2, 3, 4)."""
    numbers: list[int] = []
    for part in re.split(r"\s*(?:[,;]|and)\s*", inside):
        bounds = [int(x) for x in re.split(r"\s*[–-]\s*", part) if x.strip().isdigit()]
        if len(bounds) == 2 and 0 < bounds[1] - bounds[0] < 10:
            numbers.extend(range(bounds[0], bounds[1] + 1))
        else:
            numbers.extend(bounds)
    return tuple(numbers)


def sentence_kind(text: str, cited: bool = False) -> str:
    """ABSTENTION for "the documents do not say", META for talk about the answer, else CLAIM.

    A loose abstention wording inside a sentence that cites a passage is an answer that mentions
    a gap, so it stays a claim; the fixed decline wording never is one.
    """
    if says_not_found(text, cited=cited):
        return ABSTENTION
    if not [t for t in content_terms(text) if t not in _META_WORDS] and not _has_digit(text):
        return META
    return CLAIM


def content_terms(text: str) -> list[str]:
    """Stemmed, stop-word free terms; plural codes meet their singular ("S-400s" ~ "S-400"): the one
    term rule of both the extractive generator and the grounding check."""
    return [_TERM_PLURAL.sub(r"\1", t) for t in tokenize(text)]


_TERM_PLURAL = re.compile(r"(\d)s$")


def claim_terms(text: str) -> list[str]:
    """The terms that carry a claim's content: meta words ("according to passage 2") left out."""
    return [t for t in dict.fromkeys(content_terms(_REFERENCE.sub(" ", text))) if t not in _META_WORDS]


def entities(text: str) -> list[str]:
    """Names, numbers and dates a claim states, as written: "Stephen", "Hall", "1974", "$12", "S-400".

    A capitalised word counts unless it is a common word ("However", "The": "In 1974" gives only
    "1974"), wherever it stands: a name opening a sentence is as checkable as any other. Number
    words ("twelve") count as numbers.
    """
    out: list[str] = []
    for m in _ENTITY.finditer(_REFERENCE.sub(" ", text)):
        word = m.group().rstrip(".,'’-")
        if not word:
            continue
        lower = _strip_possessive(word.lower())
        number = any(ch.isdigit() for ch in word) or (lower in _NUMBER_WORDS and lower not in _VAGUE_NUMBERS)
        if number or (word[0].isupper() and lower not in _COMMON):
            out.append(word)
    return list(dict.fromkeys(out))


@lru_cache(maxsize=65_536)
def normalise(word: str) -> str:
    """The comparable form of a name or number: lower case, no accents, possessive, currency or thousands commas.

    "$12,000" ~ "12000", "twelve" ~ "12", "300th" ~ "300", "S-400s" ~ "S-400"; a decade stays one
    ("1970s" is not "1970").
    """
    w = _strip_possessive(_plain(word).lower().strip(".,;:'’\"()"))
    if w in _NUMBER_WORDS:
        return _NUMBER_WORDS[w]
    if not _has_digit(w):
        return w
    w = _THOUSANDS.sub("", w.lstrip("$€£¥").rstrip("%"))
    w = _ORDINAL.sub(r"\1", w)
    w = _POINT_ZERO.sub(r"\1", w)
    return _CODE_PLURAL.sub(r"\1", w)


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_ORDINAL = re.compile(r"^(\d+)(?:st|nd|rd|th)$")
_POINT_ZERO = re.compile(r"^(\d+)\.0+$")
# A code's plural only ("s-400s" → "s-400"): a decade keeps its s ("1970s" is not "1970"). Terms, which
# only ever meet terms, use the plain rule of `content_terms`.
_CODE_PLURAL = re.compile(r"(?<=[a-z-])(\d+)s$")


def _plain(word: str) -> str:
    """Without accents: "Temür" ~ "Temur", "Rély" ~ "Rely"."""
    if word.isascii():
        return word
    return "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch))


def _strip_possessive(word: str) -> str:
    return word[: -len(m.group())] if (m := _POSSESSIVE.search(word)) else word


_POSSESSIVE = re.compile(r"['’]s?$")


def _has_digit(text: str) -> bool:
    return any(ch.isdigit() for ch in text)


class Vocabulary:
    """Every word and number of a text in comparable form, to ask "does this passage say X?".

    Inflections meet ("Iranian" ~ "Iran", "Russians" ~ "Russia", "Ctenophora" ~ "ctenophores"):
    see `_inflected`.
    """

    def __init__(self, text: str):
        words: set[str] = set()
        for token in _ENTITY.findall(text):
            w = normalise(token)
            words.add(w)
            if "-" in w or "/" in w or "–" in w:
                words.update(p for p in _PARTS.split(w) if p)
        self.words = words
        self._by_prefix: dict[str, list[str]] = {}
        for w in words:
            if len(w) >= 4 and w.isalpha():
                self._by_prefix.setdefault(w[:4], []).append(w)

    def has(self, word: str) -> bool:
        w = normalise(word)
        if w in self.words:
            return True
        parts = [p for p in _PARTS.split(w) if p]
        if len(parts) > 1 and all(self.has(p) for p in parts):
            return True
        if len(w) < 4 or not w.isalpha():
            return False
        return any(_inflected(v, w) for v in self._by_prefix.get(w[:4], ()))

    def missing(self, claim: str) -> list[str]:
        """The claim's names and numbers that this text does not contain."""
        return [e for e in entities(claim) if not self.has(e)]


_PARTS = re.compile(r"[-–/]")


def _inflected(a: str, b: str) -> bool:
    """One word extends the other by at most three letters ("Iran" ~ "Iranian"), or both share six
    letters or more and differ after them by at most three ("Ctenophora" ~ "ctenophores"); "Theron"
    and "therefore" or "Huguet" and "Huguenots" do not meet."""
    shared = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        shared += 1
    rest = (len(a) - shared, len(b) - shared)
    if min(rest) == 0:
        return shared >= 4 and max(rest) <= 3
    return shared >= 6 and max(rest) <= 3


class PassageWindow(NamedTuple):
    """One sentence of a passage, or two adjacent ones, with its terms (offsets into the passage)."""

    start: int
    end: int
    text: str
    sentences: tuple[str, ...]
    terms: frozenset[str]


def passage_windows(text: str) -> list[PassageWindow]:
    """Each sentence of a passage, and each pair of adjacent ones (a claim often joins two)."""
    out: list[PassageWindow] = []
    spans = sentences(text)
    terms = [frozenset(content_terms(text[s.start : s.end])) for s in spans]
    for i, s in enumerate(spans):
        one = text[s.start : s.end]
        out.append(PassageWindow(s.start, s.end, one, (one,), terms[i]))
        if i + 1 < len(spans):
            nxt = spans[i + 1]
            pair = (one, text[nxt.start : nxt.end])
            out.append(PassageWindow(s.start, nxt.end, text[s.start : nxt.end], pair, terms[i] | terms[i + 1]))
    return out


def sentence_idf(sentence_terms: list[frozenset[str]]) -> dict[str, float]:
    """Smoothed IDF over the passages' sentences: a term every sentence repeats weighs least."""
    df = Counter(t for terms in sentence_terms for t in terms)
    n = len(sentence_terms)
    return {t: math.log(1.0 + (n + 1) / (c + 0.5)) for t, c in df.items()} | {"": math.log(1.0 + (n + 1) / 0.5)}
