"""Declining a question about something the documents mention but do not say.

"When was Jade Maloney born?" over slides that name Jade Maloney: retrieval finds her name and the
reader, asked for a date, returns the best span it can, her name. The passages are about the
person, so no relevance threshold catches it; what is missing is the thing asked. An answer is
declined here when:

* a when/where/how/why question is answered with a name it already names (the subject itself, not
  something said of it), or
* the question asks for a kind of fact that words must state (when someone was born or died, a
  cost, an age, a year or a quantity) and no sentence the answer quotes states that kind of fact.

This is one rule beside the decline decision (`generation.decline`); the pipeline applies it where
the answer is assembled (`Assistant.finish`).
"""

from __future__ import annotations

import re

from assistant.schema import Draft, Passage

__all__ = ["unstated"]

_WORD = re.compile(r"\w+")
_YEAR_OR_DATE = (
    r"\b(?:1[0-9]\d\d|20\d\d|\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\w*"
    r"|(?:january|february|march|april|may|june|july|august|september|october|november|december)\b)"
)
_MONEY = r"[$€£¥]|\b(?:usd|eur|gbp|dollars?|euros?|pounds?|cents?|yen|francs?|marks?|rubles?|rupees?)\b"
_NUMBER = (
    r"\b\d[\d,.]*\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty"
    r"|hundreds?|thousands?|millions?|billions?|dozens?)\b"
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
