"""Pick the sentences of a long text that answer a question (retrieval-only answers).

A scraped page can be tens of thousands of characters and the sentence the user asked about can
sit anywhere in it, so a retrieval-only answer quotes the best-matching sentences (in page order,
gaps marked with "…") instead of the page's first paragraph. Matching is lexical: question words
against sentence words with a crude stem, rarer words in the text weighing more. A question with
no matching word gets the start of the text.
"""

from __future__ import annotations

import math
import re
from collections import Counter

ELLIPSIS = "…"
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_WORD = re.compile(r"\w+", re.UNICODE)
_PIECE_CHARS = 400  # sentences longer than this are cut into pieces at spaces
_RELATIVE_FLOOR = 0.5  # a sentence is quoted if it scores at least this share of the best one
_STOPWORDS = frozenset("""
a about above after again all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers him his how i if in into is it its itself just me more most my no nor not now of off on once
only or other our out over own please same she should so some such tell than that the their them then
there these they this those through to too under until up very was we were what when where which while
who whom why will with would you your see read page summarise summarize explain say says said
""".split())


def _stem(word: str) -> str:
    """Crude and language-blind: drop a plural "s", keep six letters ("inspected" ~ "inspection")."""
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word[:6]


def _terms(text: str) -> set[str]:
    return {_stem(w) for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOPWORDS and len(w) > 1}


def _pieces(text: str) -> list[str]:
    """The text as sentences, each at most about _PIECE_CHARS long."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        current: list[str] = []
        length = 0
        for word in sentence.split():
            if current and length + len(word) > _PIECE_CHARS:
                pieces.append(" ".join(current))
                current, length = [], 0
            current.append(word)
            length += len(word) + 1
        if current:
            pieces.append(" ".join(current))
    return pieces


def _lead(text: str, budget: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= budget else flat[: budget - 1].rstrip() + ELLIPSIS


def _scores(pieces: list[str], question: set[str]) -> list[float]:
    piece_terms = [_terms(p) & question for p in pieces]
    frequency = Counter(t for terms in piece_terms for t in terms)
    weight = {t: math.log(1 + len(pieces) / n) for t, n in frequency.items()}
    return [sum(weight[t] for t in terms) for terms in piece_terms]


def _join(pieces: list[str], chosen: list[int]) -> str:
    parts: list[str] = [] if chosen[0] == 0 else [ELLIPSIS]
    for previous, index in zip([None, *chosen], chosen, strict=False):
        if previous is not None and index != previous + 1:
            parts.append(ELLIPSIS)
        parts.append(pieces[index])
    if chosen[-1] != len(pieces) - 1:
        parts.append(ELLIPSIS)
    return " ".join(parts)


def excerpt(text: str, question: str, budget: int) -> str:
    """`text` itself when it fits in `budget` characters; else its sentences that best match `question`."""
    flat = " ".join(text.split())
    if len(flat) <= budget:
        return flat
    pieces = _pieces(text)
    terms = _terms(question)
    scores = _scores(pieces, terms) if terms else []
    if not any(scores):
        return _lead(text, budget)
    # Sentences that match about as well as the best one; weaker matches are noise, not context.
    floor = max(scores) * _RELATIVE_FLOOR
    ranked = [i for i in sorted(range(len(pieces)), key=lambda i: (-scores[i], i)) if scores[i] >= floor]
    # The best sentences, then (room permitting) the sentence after each, which often finishes the thought.
    candidates = ranked + [i + 1 for i in ranked if i + 1 < len(pieces)]
    chosen: set[int] = set()
    used = 0
    for index in candidates:
        cost = len(pieces[index]) + 3
        if index in chosen or (chosen and used + cost > budget):
            continue
        chosen.add(index)
        used += cost
    return _lead(_join(pieces, sorted(chosen)), budget)
