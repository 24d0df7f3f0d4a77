"""The extractive generator: answers with the documents' own sentences, so it cannot invent.

It is the `extractive` generator, and the reader generator's evidence and fallback answer (the
default generator is the reader, `generation/reader.py`).

Every sentence of the retrieved passages is scored by meaning (cosine to the question), by the
IDF-weighted share of the question's terms it contains (rare terms such as names and numbers
count most; document frequencies come from the passages' own sentences, so the topic word every
passage repeats counts least), by its passage's retrieval rank, by whether it holds what the
question asks for (a date for "when", a number for "how many", a new name for "who", a cause for
"why"), and by a share of an adjacent sentence's lead (answers often follow the sentence that
names the subject). The best sentence, plus up to two runners-up that score at least 60 % as well
(from the same passage only when adjacent, so each quote stays a short true substring), form the
answer, each cited. The weights come from a grid search on SQuAD v2 dev.

Whether to decline is not decided here: the evidence features `analyse` measures go to the one
decline decision (`generation/decline.py`), with the thresholds saved beside the reader model.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from assistant.embedding import Embedder
from assistant.generation.base import DECLINE_TEXT, Candidate, Generator
from assistant.generation.decline import DEFAULT_THRESHOLDS, Thresholds, decide_on_evidence, no_answer_probability
from assistant.grounding.claims import content_terms
from assistant.ingest.chunking import sentences
from assistant.schema import Draft, Passage
from assistant.terms import tokenize

# Sentence score weights (grid-searched on SQuAD v2 dev, see the module docstring).
W_COSINE, W_OVERLAP, W_RANK, W_TYPE = 0.45, 0.45, 0.10, 0.10
W_NEIGHBOUR = 0.3  # a sentence right after (or before) a strong one inherits part of its lead ("If so, ...")
SECOND_SENTENCE_RATIO = 0.6
THIRD_SENTENCE_RATIO = 0.8  # a third sentence must be nearly as good: it lengthens every answer

_NAME = re.compile(r"\b(?:[A-Z][\w'-]*[A-Za-z0-9]|[A-Z]|\d[\d,.]*)\b")


class ExtractiveGenerator(Generator):
    """Composes a short cited answer from the best sentences of the passages.

    Args:
        embedder: Encodes question and sentences (the same model as retrieval).
        max_sentences: Sentences in an answer (1 to 3).
        thresholds: The decline decision's thresholds (`decline_at` is the one this generator uses).
    """

    name = "extractive"

    def __init__(
        self,
        embedder: Embedder,
        max_sentences: int = 3,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
    ):
        self.embedder = embedder
        self.max_sentences = max(1, min(3, max_sentences))
        self.thresholds = thresholds

    def generate(self, question: str, passages: list[Passage]) -> Draft:
        ranked, evidence = self.analyse(question, passages)
        if not ranked or decide_on_evidence(no_answer_probability(evidence), self.thresholds).action == "decline":
            return Draft(DECLINE_TEXT, abstained=True)
        return self.compose(ranked, passages, question)

    def compose(self, ranked: list[Candidate], passages: list[Passage], question: str = "") -> Draft:
        """The answer from ranked sentences (see `analyse`): the chosen ones, each cited and quoted (the
        reason first for a why/how question, none from far less relevant passages: `reasons.arrange`)."""
        from assistant.generation.reasons import arrange

        chosen = arrange(question, self.choose(ranked), passages)
        parts, quotes = [], {}
        for c in chosen:
            parts.append(f"{one_line(c.text)} [{c.passage}]")
            quotes[c.passage] = _join_quote(passages[c.passage - 1].chunk.text, quotes.get(c.passage), c)
        return Draft(" ".join(parts), abstained=False, quotes=quotes)

    # -- scoring -------------------------------------------------------------------------------
    def analyse(self, question: str, passages: list[Passage]) -> tuple[list[Candidate], dict[str, float]]:
        """Sentences best first, and the evidence features the abstention model reads."""
        spans = []
        seen: set[str] = set()
        for n, p in enumerate(passages, start=1):
            for i, s in enumerate(sentences(p.chunk.text)):
                text = p.chunk.text[s.start : s.end]
                key = " ".join(text.lower().split())
                if key in seen or len(key) < 12:
                    continue
                seen.add(key)
                spans.append((n, i, s.start, s.end, text))
        if not spans:
            return [], {}
        q_terms = list(dict.fromkeys(_terms(question)))
        s_terms = [set(_terms(t)) for *_, t in spans]
        idf = _idf(q_terms, s_terms)
        total = sum(idf.values()) or 1.0
        q_vec = self.embedder.encode_cached([question])[0]
        cos = self.embedder.encode_cached([t for *_, t in spans]) @ q_vec
        overlaps = [sum(idf[t] for t in q_terms if t in terms) / total if q_terms else 0.0 for terms in s_terms]
        base = {
            (n, i): W_COSINE * float(c) + W_OVERLAP * o for (n, i, *_), c, o in zip(spans, cos, overlaps, strict=True)
        }
        wants = _answer_type(question)
        out = []
        for (n, i, start, end, text), c, overlap in zip(spans, cos, overlaps, strict=True):
            own = base[(n, i)]
            lead = max(base.get((n, i - 1), 0.0), base.get((n, i + 1), 0.0)) - own
            fits = 0.5 if wants is None else float(wants(question, text))
            score = own + W_NEIGHBOUR * max(0.0, lead) + W_RANK / n + W_TYPE * fits
            out.append(Candidate(n, i, start, end, text, float(c), overlap, score))
        out.sort(key=lambda c: -c.score)
        best = out[0]
        everywhere = set().union(*s_terms)
        names = _names(question)
        haystack = " ".join(p.chunk.text for p in passages).lower()
        evidence = {
            "score": best.score,
            "cosine": best.cosine,
            "coverage": best.overlap,
            "passage_coverage": sum(idf[t] for t in q_terms if t in everywhere) / total if q_terms else 0.0,
            "missing_names": sum(1 for w in names if w.lower() not in haystack) / len(names) if names else 0.0,
            "names": float(len(names)),
            "margin": best.score - out[1].score if len(out) > 1 else best.score,
            "passage_cosine": max(p.dense for p in passages),
            "terms": float(len(q_terms)),
            "pair_coverage": _pair_coverage(spans, s_terms, q_terms, idf, total),
        }
        return out, evidence

    def choose(self, ranked: list[Candidate]) -> list[Candidate]:
        """The best sentence, plus close runners-up that add something; in reading order."""
        chosen = [ranked[0]]
        for cand in ranked[1:]:
            ratio = SECOND_SENTENCE_RATIO if len(chosen) == 1 else THIRD_SENTENCE_RATIO
            if len(chosen) >= self.max_sentences or cand.score < ratio * ranked[0].score:
                break
            if any(_similar(cand.text, c.text) for c in chosen):
                continue
            same = [c for c in chosen if c.passage == cand.passage]
            if same and not any(abs(c.index - cand.index) == 1 for c in same):
                continue  # a quote spanning far-apart sentences would be long
            chosen.append(cand)
        first = chosen[0].passage  # same passage: reading order; otherwise best first
        return sorted(chosen, key=lambda c: (0, c.start) if c.passage == first else (1, ranked.index(c)))


def _pair_coverage(spans, s_terms, q_terms, idf, total) -> float:
    """The best weighted share of the question's terms found in one sentence plus the next one."""
    if not q_terms:
        return 0.0
    by_position = {(n, i): terms for (n, i, *_), terms in zip(spans, s_terms, strict=True)}
    best = 0.0
    for (n, i), terms in by_position.items():
        both = terms | by_position.get((n, i + 1), set())
        best = max(best, sum(idf[t] for t in q_terms if t in both) / total)
    return best


def _terms(text: str) -> list[str]:
    """Keyword tokens, with plural numbers and codes matched to their singular ("S-400s" ~ "S-400")."""
    return [t for t in content_terms(text) if t not in _ASKING]


# Words that frame a question rather than say what it is about (stemmed as `tokenize` does).
_ASKING = frozenset(tokenize("who whom whose what which when where why how did does do might can could would"))


def _idf(q_terms: list[str], sentence_terms: list[set[str]]) -> dict[str, float]:
    """Smoothed IDF of the question's terms over the passages' sentences (unseen terms weigh most)."""
    df = Counter(t for terms in sentence_terms for t in terms if t in q_terms)
    n = len(sentence_terms)
    return {t: math.log(1.0 + (n + 1) / (df[t] + 0.5)) for t in q_terms}


_DATE = re.compile(
    r"\b(1\d{3}|20\d{2})\b|\b(January|February|March|April|May|June|July|August|September|October|"
    r"November|December|century|centuries)\b"
)
_CAPITALISED = re.compile(r"\b[A-Z][a-z]+")


def _has_date(question: str, text: str) -> bool:
    return bool(_DATE.search(text))


def _has_number(question: str, text: str) -> bool:
    return any(ch.isdigit() for ch in text)


def _has_new_name(question: str, text: str) -> bool:
    asked = set(question.split())
    return any(w not in asked for w in _CAPITALISED.findall(text)[1:])


_CAUSE = re.compile(r"\b(because|since|due to|so that|in order to|as a result|reason|therefore|thus|would)\b", re.I)
_NEGATION = re.compile(r"\b(not|no|never|nor|cannot)\b|n't\b", re.I)


def _explains(question: str, text: str) -> bool:
    """A "why" answer gives a cause, and keeps the question's polarity ("why not" ~ "would not")."""
    if _NEGATION.search(question):
        return bool(_NEGATION.search(text))
    return bool(_CAUSE.search(text))


def _answer_type(question: str):
    """What an answer to this kind of question contains (a date, a number, a name), or None."""
    q = question.lower()
    if q.startswith("when") or re.search(r"\b(what|which) (year|century|decade|month|date)\b", q):
        return _has_date
    if re.search(r"\bhow (many|much|long|old|far|large|big)\b|\bwhat percentage\b", q):
        return _has_number
    if q.startswith(("who ", "whom ")):
        return _has_new_name
    if q.startswith("why "):
        return _explains
    return None


def _names(question: str) -> list[str]:
    """Capitalised words (not the first) and numbers: the details adversarial questions change."""
    words = _NAME.findall(question)
    first = question.split()[0] if question.split() else ""
    return [w for w in words if w != first and len(w) > 1 and w.lower() not in _QUESTION_WORDS]


_QUESTION_WORDS = frozenset({"what", "who", "when", "where", "which", "why", "how", "whom", "whose"})


def _similar(a: str, b: str) -> bool:
    """Near-duplicates, including a sentence that mostly repeats a longer one (a headline and its lead)."""
    ta, tb = set(tokenize(a)), set(tokenize(b))
    return bool(ta and tb) and len(ta & tb) / min(len(ta), len(tb)) > 0.75


def one_line(text: str) -> str:
    """A quoted sentence as it is shown in an answer: its whitespace (line breaks too) made single spaces."""
    return " ".join(text.split())


def _join_quote(passage: str, previous: str | None, c: Candidate) -> str:
    """The quoted span of a passage: one sentence, or the stretch covering two adjacent ones."""
    if previous is None:
        return c.text
    at = passage.find(previous)
    if at < 0:
        return previous
    return passage[min(at, c.start) : max(at + len(previous), c.end)]
