"""The terms of a text as every word-counting part of the assistant counts them.

Lower-cased words of two or more characters, English stop words dropped, Snowball-stemmed: the
keyword (BM25) index scores passages by them, document records pick a document's key terms by
them, and the grounding checks compare an answer's words with its passages' by them. One
definition, so a term means the same wherever it is counted.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


# bm25s's English stop words (`bm25s.stopwords.STOPWORDS_EN`): the index scores as bm25s does (a test
# compares them), without depending on it.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "  # noqa: SIM905
    "these they this to was will with".split()
)
_WORD = re.compile(r"(?u)\b\w\w+\b")


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop-word free, Snowball-stemmed word tokens."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    return _stemmer().stemWords(words)


def tokenize_many(texts: list[str]) -> list[list[str]]:
    """Tokens of each text; repeated texts (boilerplate, copies) are tokenised once."""
    seen: dict[str, list[str]] = {}
    return [seen[t] if t in seen else seen.setdefault(t, tokenize(t)) for t in texts]
