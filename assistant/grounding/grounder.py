"""Attribution after generation: every sentence of an LLM answer is checked against the passages.

A model may cite nothing, cite the wrong passage, or state what no passage says. `Grounder.ground`
splits an answer into sentences and measures, for each claim and each passage, how well the
passage supports it: meaning (cosine of the claim to the passage's sentences, through the same
embedding model as retrieval, ONNX at answer time) blended with lexical coverage (the IDF-weighted
share of the claim's terms found in one passage sentence or two adjacent ones). A name or number
the claim states that no passage contains makes it unsupported outright: that is the commonest
invention and the one a cosine misses ("in 1975" and "in 1974" embed alike).

Markers the model wrote are kept when their passage supports the sentence nearly as well as the
best one does; otherwise the best passage is cited instead, and a sentence without markers gets
the best passage. Unsupported sentences keep their text but lose their markers and are listed, so
the pipeline can show them apart, and `mostly_unsupported` tells when the extractive answer should
stand in. The extractive generator needs none of this: its sentences are quotes.

Thresholds come from `bench/grounding.py --calibrate` on SQuAD v2 dev articles (see there).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from assistant.embedding import Embedder
from assistant.errors import InputError
from assistant.grounding.claims import (
    ABSTENTION,
    CLAIM,
    AnswerSentence,
    PassageWindow,
    SplitAnswer,
    Vocabulary,
    claim_terms,
    entities,
    passage_windows,
    sentence_idf,
    split_answer,
)
from assistant.schema import Passage, Unsupported

UNSUPPORTED_WARNING = "the language model's answer was not supported by the documents"

# Support of a claim by a passage window: W_MEANING * cosine + (1 - W_MEANING) * lexical coverage.
W_MEANING = 0.5
THRESHOLD = 0.48  # below this for every passage, the claim is unsupported
# The words alone decide outside [LEXICAL_FLOOR, LEXICAL_SURE): on the tuning articles no claim
# sharing less than 0.2 of its (weighted) terms with a window reached the threshold, and every one
# sharing 0.6 or more did, so only the claims in between pay for an embedding.
LEXICAL_FLOOR = 0.2
LEXICAL_SURE = 0.6
# At most this many claims of one answer are embedded (about 12 ms each on two cores, and the p95 of
# the check must stay under 30 ms); the others in the open band are decided on words alone against
# LEXICAL_THRESHOLD (the threshold calibrated with no meaning weight). The claim nearest to that
# threshold, the least certain on words, is the one embedded.
MAX_EMBEDDED = 1
LEXICAL_THRESHOLD = 0.33
KEEP_MARGIN = 0.15  # a cited passage stays cited when it supports the claim within this of the best
MAX_UNSUPPORTED_SHARE = 0.5  # more than this share of an answer's claims unsupported: the answer fails
CANDIDATES = 3  # passage sentences per claim embedded when the passages were not prepared
SHORT_CLAIM_TERMS = 3  # a claim this terse ("Edward Said.") is judged together with its question


@dataclass(frozen=True)
class SentenceSupport:
    """What the check found for one sentence of the answer.

    `start`/`end` locate the sentence (markers inside it included) in the answer as given;
    `cited` are the valid passage numbers its markers named, `passages` those it is attributed to
    after the check (1-based positions in the passage list; empty when unsupported or not a claim).
    """

    text: str
    start: int
    end: int
    kind: str  # "claim", "abstention" or "meta" (the last two are not checked)
    cited: tuple[int, ...]
    passages: tuple[int, ...]
    score: float
    supported: bool
    reason: str
    evidence: str = ""  # the passage sentence(s) that support it best, a substring of that passage


@dataclass(frozen=True)
class Grounding:
    """An answer after the check.

    `text` is the answer with markers kept, corrected or added (none on unsupported sentences);
    `unsupported` locates each unsupported sentence in `text`; `quotes` maps a cited passage to the
    sentence(s) of it that support the answer, as `Draft.quotes` expects.
    """

    text: str
    sentences: tuple[SentenceSupport, ...]
    unsupported: tuple[Unsupported, ...]
    quotes: dict[int, str] = field(default_factory=dict)

    @property
    def claims(self) -> tuple[SentenceSupport, ...]:
        return tuple(s for s in self.sentences if s.kind == CLAIM)

    @property
    def declines(self) -> bool:
        """The answer only says the documents do not hold the answer (no claim, an abstention)."""
        return not self.claims and any(s.kind == ABSTENTION for s in self.sentences)

    @property
    def cited(self) -> tuple[int, ...]:
        """Passages the grounded text cites, in order of first use."""
        return tuple(dict.fromkeys(n for s in self.sentences for n in s.passages))


@dataclass(frozen=True)
class Window:
    """One passage sentence, or two adjacent ones: what a claim is compared with."""

    passage: int  # 1-based
    start: int
    end: int
    text: str  # passage text from the first sentence's start to the last one's end
    sentences: tuple[str, ...]  # the passage sentences it covers (one or two adjacent)
    terms: frozenset[str]


@dataclass(frozen=True)
class ClaimEvidence:
    """How one claim compares with every window of the passages (arrays are per window)."""

    windows: tuple[Window, ...]
    lexical: np.ndarray
    meaning: np.ndarray | None  # None when the words alone decided (see `Grounder.needs_meaning`)
    missing: tuple[str, ...]  # its names/numbers that no passage contains
    numbers: dict[str, tuple[int, ...]] = field(default_factory=dict)  # each number -> passages that have it


class Grounder:
    """Checks which passages support each sentence of an answer, and fixes its citations.

    Args:
        embedder: The retrieval embedding model (questions' ONNX path: `encode_queries`).
        threshold: Least support (0..1) a claim needs from some passage.
        w_meaning: Weight of meaning (cosine) against lexical coverage in the support score.
        keep_margin: A cited passage is kept when its support is within this of the best passage's.
        lexical_floor / lexical_sure: Below the floor a claim is unsupported, from the sure value on it
            is supported, on its words alone (nothing embedded); in between its meaning is weighed.
        lexical_threshold: The threshold on lexical coverage alone, for claims decided without meaning.
        max_embedded: Claims of one answer whose meaning is weighed at most (the check's cost bound).
        max_unsupported_share: `mostly_unsupported` is true above this share of unsupported claims.
        candidates: Passage sentences per claim embedded when the passages were not `prepare`d.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        threshold: float = THRESHOLD,
        w_meaning: float = W_MEANING,
        keep_margin: float = KEEP_MARGIN,
        lexical_floor: float = LEXICAL_FLOOR,
        lexical_sure: float = LEXICAL_SURE,
        lexical_threshold: float = LEXICAL_THRESHOLD,
        max_embedded: int = MAX_EMBEDDED,
        max_unsupported_share: float = MAX_UNSUPPORTED_SHARE,
        candidates: int = CANDIDATES,
    ):
        self.embedder = embedder
        self.threshold = threshold
        self.w_meaning = w_meaning
        self.keep_margin = keep_margin
        if not (lexical_floor <= threshold <= lexical_sure and lexical_floor <= lexical_threshold <= lexical_sure):
            raise InputError("Grounder needs lexical_floor <= threshold, lexical_threshold <= lexical_sure.")
        self.lexical_floor = lexical_floor
        self.lexical_sure = lexical_sure
        self.lexical_threshold = lexical_threshold
        self.max_embedded = max_embedded
        self.max_unsupported_share = max_unsupported_share
        self.candidates = candidates
        self._passages: OrderedDict[str, _PassageView] = OrderedDict()
        self._lock = threading.Lock()

    def prepare(self, passages: list[Passage]) -> None:
        """Read and embed the passages' sentences ahead of `ground` (e.g. while the LLM writes the answer)."""
        views = [self._view(p.chunk.text) for p in passages]
        self.embedder.encode_cached([w.text for v in views for w in v.windows if len(w.sentences) == 1])

    # -- the check -----------------------------------------------------------------------------
    def ground(self, answer_text: str, passages: list[Passage], question: str | None = None) -> Grounding:
        """Attribute each sentence of `answer_text` to the passages that support it, or flag it.

        Args:
            answer_text: The LLM's answer, with or without `[n]` markers (n = position in `passages`).
            passages: The passages the LLM was given, in the order it numbered them.
            question: The (standalone) question; a terse claim ("Edward Said.") is then judged as
                the answer to it, so a name that merely occurs in a passage does not pass.
        """
        split = split_answer(answer_text)
        claims = [s for s in split.sentences if s.kind == CLAIM]
        measured = iter(self.measure([s.text for s in claims], passages, question) if passages else [])
        checked = []
        for s in split.sentences:
            if s.kind != CLAIM:
                checked.append(self._unchecked(s, len(passages)))
            elif not passages:
                checked.append(_flag(self._unchecked(s, 0), "there are no passages to check it against"))
            else:
                checked.append(self.decide(s, next(measured), len(passages)))
        return self._assemble(split, checked, passages)

    def mostly_unsupported(self, grounding: Grounding) -> bool:
        """Whether the answer should give way to the extractive one (warning: `UNSUPPORTED_WARNING`).

        True when more than `max_unsupported_share` of its claims are unsupported, or when it makes
        no claim at all without declining (talk about the documents that says nothing of them).
        """
        claims = grounding.claims
        if not claims:
            return not grounding.declines
        bad = sum(1 for c in claims if not c.supported)
        return bad / len(claims) > self.max_unsupported_share

    def measure(self, claims: list[str], passages: list[Passage], question: str | None = None) -> list[ClaimEvidence]:
        """For each claim, its lexical and meaning support by every passage window, and its missing names.

        A terse claim (at most `SHORT_CLAIM_TERMS` content terms) is scored together with the
        question it answers; its names and numbers are its own.
        """
        views = [self._view(p.chunk.text) for p in passages]
        windows = [Window(n, *w) for n, v in enumerate(views, start=1) for w in v.windows]
        idf = sentence_idf([w.terms for w in windows if len(w.sentences) == 1])
        scored = [f"{question} {c}" if question and len(claim_terms(c)) <= SHORT_CLAIM_TERMS else c for c in claims]
        lexical = [self.coverage(claim_terms(c), windows, idf) for c in scored]
        missing, numbers = [], []
        for c in claims:
            where = {e: tuple(n for n, v in enumerate(views, start=1) if v.vocabulary.has(e)) for e in entities(c)}
            missing.append(tuple(e for e, ns in where.items() if not ns))
            numbers.append({e: ns for e, ns in where.items() if ns and any(ch.isdigit() for ch in e)})
        ask = [i for i, (lex, gone) in enumerate(zip(lexical, missing, strict=True)) if self.needs_meaning(lex, gone)]
        ask = sorted(ask, key=lambda i: abs(float(lexical[i].max()) - self.lexical_threshold))[: self.max_embedded]
        weighed = self.meaning([scored[i] for i in ask], windows, [lexical[i] for i in ask])
        meaning = dict(zip(ask, weighed, strict=True))
        frozen = tuple(windows)
        return [ClaimEvidence(frozen, lexical[i], meaning.get(i), missing[i], numbers[i]) for i in range(len(claims))]

    def needs_meaning(self, lexical: np.ndarray, missing: tuple[str, ...]) -> bool:
        """Whether the claim's words leave its support open, so its meaning must be weighed.

        Embedding is the check's whole cost (about 12 ms a sentence on two cores), so it is skipped
        when the verdict is already known: a name or number no passage has, or words so few
        (`lexical_floor`) or so fully present (`lexical_sure`) in some window that the cosine did
        not change the verdict on the tuning data.
        """
        best = float(lexical.max(initial=0.0))
        return not missing and self.w_meaning > 0.0 and self.lexical_floor <= best < self.lexical_sure

    # -- scoring strategies --------------------------------------------------------------------
    @staticmethod
    def coverage(terms: list[str], windows: list[Window], idf: dict[str, float]) -> np.ndarray:
        """Per window, the IDF-weighted share of the claim's terms it contains (0..1)."""
        if not terms:
            return np.zeros(len(windows), dtype=np.float32)
        unseen = max(idf.values(), default=1.0)
        weights = {t: idf.get(t, unseen) for t in terms}
        total = sum(weights.values())
        return np.array([sum(weights[t] for t in terms if t in w.terms) / total for w in windows], dtype=np.float32)

    def meaning(self, claims: list[str], windows: list[Window], lexical: list[np.ndarray]) -> list[np.ndarray]:
        """Per claim and window, the best cosine of the claim to the window's sentences.

        Sentences already embedded (by `prepare` or an earlier call) are all compared; otherwise
        only each claim's `candidates` best sentences by lexical coverage are embedded, and the
        others count as unrelated (cosine 0): the check must stay cheap next to the LLM.
        """
        singles = [i for i, w in enumerate(windows) if len(w.sentences) == 1]
        cached = {windows[i].sentences[0] for i in singles if self.embedder.is_cached(windows[i].sentences[0])}
        wanted = []
        for lex in lexical:
            order = sorted(singles, key=lambda i: -lex[i])
            wanted.append({windows[i].sentences[0] for i in order[: self.candidates]} | cached)
        texts = list(dict.fromkeys([*claims, *(t for ts in wanted for t in ts)]))
        vectors = dict(zip(texts, self.embedder.encode_cached(texts), strict=True))
        out = []
        for claim, want in zip(claims, wanted, strict=True):
            cos = {t: float(vectors[t] @ vectors[claim]) for t in want}
            out.append(np.array([max(cos.get(t, 0.0) for t in w.sentences) for w in windows], dtype=np.float32))
        return out

    def support(self, evidence: ClaimEvidence, n_passages: int) -> tuple[np.ndarray, dict[int, int]]:
        """Per passage (index 1..n), the claim's best window score, and which window gave it."""
        if evidence.meaning is None:
            scores = evidence.lexical
        else:
            scores = self.w_meaning * evidence.meaning + (1 - self.w_meaning) * evidence.lexical
        per_passage = np.full(n_passages + 1, -1.0, dtype=np.float32)
        best_window: dict[int, int] = {}
        for i, w in enumerate(evidence.windows):
            if scores[i] > per_passage[w.passage]:
                per_passage[w.passage], best_window[w.passage] = scores[i], i
        return np.maximum(per_passage, 0.0), best_window

    def decide(self, sentence: AnswerSentence, evidence: ClaimEvidence, n_passages: int) -> SentenceSupport:
        """Supported or not, and which passages to cite, from the claim's evidence."""
        per_passage, best_window = self.support(evidence, n_passages)
        cited = tuple(dict.fromkeys(n for n in sentence.markers if 1 <= n <= n_passages))
        best = int(np.argmax(per_passage[1:])) + 1
        top = float(per_passage[best])
        s = sentence
        base = SentenceSupport(s.text, s.start, s.end, CLAIM, cited, (), top, False, "")
        if evidence.missing:
            shown = ", ".join(f"'{m}'" for m in evidence.missing[:5])
            return _flag(base, f"names/numbers not in any passage: {shown}")
        threshold = self.threshold if evidence.meaning is not None else self.lexical_threshold
        if top < threshold:
            return _flag(base, f"no passage supports it (best support {top:.2f} < {threshold:.2f})")
        kept = tuple(n for n in cited if per_passage[n] >= max(threshold, top - self.keep_margin))
        chosen = self.locate_numbers(kept or (best,), evidence.numbers, per_passage, threshold)
        if isinstance(chosen, str):
            return _flag(base, f"numbers not in the passage that supports it: {chosen}")
        if kept:
            reason = "supported by the cited passage" + ("s" if len(kept) > 1 else "")
        elif cited:
            reason = f"cited passage {', '.join(map(str, cited))} does not support it; passage {best} does"
        else:
            reason = f"no marker; passage {best} supports it"
        evidence_text = evidence.windows[best_window[chosen[0]]].text if chosen[0] in best_window else ""
        return SentenceSupport(s.text, s.start, s.end, CLAIM, cited, chosen, top, True, reason, evidence_text)

    @staticmethod
    def locate_numbers(
        chosen: tuple[int, ...], numbers: dict[str, tuple[int, ...]], per_passage: np.ndarray, threshold: float
    ) -> tuple[int, ...] | str:
        """The cited passages, plus a supporting one for each number they lack; or the numbers none has.

        A number is the most exact thing a sentence states, so it must come from a passage that
        supports the sentence, not merely from somewhere among the passages (a year lifted from
        another paragraph is the typical slip of a small model).
        """
        out, lost = list(chosen), []
        for number, where in numbers.items():
            if any(n in out for n in where):
                continue
            supporting = [n for n in where if per_passage[n] >= threshold]
            if supporting:
                out.append(max(supporting, key=lambda n: per_passage[n]))
            else:
                lost.append(f"'{number}'")
        return ", ".join(lost[:5]) if lost else tuple(out)

    # -- internals -----------------------------------------------------------------------------
    @staticmethod
    def _unchecked(sentence, n_passages: int) -> SentenceSupport:
        cited = tuple(dict.fromkeys(n for n in sentence.markers if 1 <= n <= n_passages))
        return SentenceSupport(
            sentence.text,
            sentence.start,
            sentence.end,
            sentence.kind,
            cited,
            (),
            0.0,
            True,
            f"not a claim ({sentence.kind})",
        )

    def _assemble(self, split: SplitAnswer, checked: list[SentenceSupport], passages: list[Passage]) -> Grounding:
        """The answer text with the checked markers, and where its unsupported sentences now are."""
        parts: list[str] = []
        unsupported: list[Unsupported] = []
        quotes: dict[int, str] = {}
        pos = 0
        for (s, e), c in zip(split.spans, checked, strict=True):
            parts.append(split.clean[pos:s])
            body = split.clean[s:e]
            at = sum(len(p) for p in parts)
            parts.append(_with_markers(body, c.passages))
            if c.kind == CLAIM and not c.supported:
                unsupported.append(Unsupported(body, at, at + len(body), c.reason))
            for n in c.passages:
                if c.evidence and n not in quotes and c.evidence in passages[n - 1].chunk.text:
                    quotes[n] = c.evidence
            pos = e
        parts.append(split.clean[pos:])
        return Grounding("".join(parts).strip(), tuple(checked), tuple(unsupported), quotes)

    def _view(self, text: str) -> _PassageView:
        """A passage's sentences, windows and vocabulary, read once per passage text."""
        with self._lock:
            view = self._passages.get(text)
        if view is None:
            view = _PassageView(tuple(passage_windows(text)), Vocabulary(text))
            with self._lock:
                self._passages[text] = view
                while len(self._passages) > 2_000:
                    self._passages.popitem(last=False)
        return view


def _flag(base: SentenceSupport, reason: str) -> SentenceSupport:
    return SentenceSupport(base.text, base.start, base.end, base.kind, base.cited, (), base.score, False, reason)


@dataclass(frozen=True)
class _PassageView:
    windows: tuple[PassageWindow, ...]
    vocabulary: Vocabulary


_CLOSING = re.compile(r"[.!?;:]+$")


def _with_markers(body: str, passages: tuple[int, ...]) -> str:
    """The sentence with " [n]" markers before its final punctuation ("... Ashgabat [1].")."""
    if not passages:
        return body
    markers = "".join(f" [{n}]" for n in passages)
    m = _CLOSING.search(body)
    return body[: m.start()] + markers + body[m.start() :] if m else body + markers
