"""SQuAD v2 answer metrics (official normalisation) and no-answer AUROC, shared by bench and `assistant eval`."""

from __future__ import annotations

import collections
import re
import string

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, squeeze whitespace (as the official script)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def _f1_one(gold: str, pred: str) -> float:
    g, p = _tokens(gold), _tokens(pred)
    if not g or not p:
        return float(g == p)
    common = collections.Counter(g) & collections.Counter(p)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def exact_match(golds: list[str], pred: str) -> float:
    """1.0 if the prediction equals a gold answer after normalisation; no golds means "no answer" is gold."""
    golds = [g for g in golds if normalize_answer(g)] or [""]
    return max(float(normalize_answer(g) == normalize_answer(pred)) for g in golds)


def f1(golds: list[str], pred: str) -> float:
    """Token F1, max over the gold answers; an empty prediction means "no answer"."""
    golds = [g for g in golds if normalize_answer(g)] or [""]
    return max(_f1_one(g, pred) for g in golds)


def auroc(scores: list[float], positives: list[bool]) -> float:
    """Area under the ROC curve (ties count half), e.g. answer probability vs. "has an answer"."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positives, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
