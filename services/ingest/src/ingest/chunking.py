"""Clean pages → overlapping, sentence-aligned chunks that remember their page.

Sentences are packed into chunks of about `target_chars`; the last sentences of a chunk (up
to `overlap_chars`) open the next one. A sentence longer than `max_chars` is cut at spaces,
never inside a word (only a single "word" longer than `max_chars`, such as a run of CJK text
without spaces, is cut at the limit). The same text always gives the same chunks, so a
re-delivered document overwrites its own points.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# After ., !, ? or … (and closing quotes/brackets), whitespace, then something that can start
# a sentence; or after CJK full stops. Blank lines (paragraphs) always end a sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+"
                           r"(?=[\"'“‘(\[]?[A-Z0-9À-ÖØ-Þ\u0370-\u03ff\u0400-\u04ff\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af])"
                           r"|(?<=[。！？])\s*|\n\n")
# A few abbreviations that end in "." without ending a sentence.
_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|cf|vs|al|Fig|Figs|Eq|Eqs|Ref|Refs|No|Dr|Mr|Mrs|Ms|Prof|St)|\b[A-Z])\.$")

# The longest abbreviation ("Prof.", "Figs.") plus the character before it that \b looks at.
_ABBREVIATION_TAIL = 8
# How often (in sentences or pieces) the deadline is looked at.
_DEADLINE_EVERY = 256


@dataclass(frozen=True)
class ChunkingPolicy:
    target_chars: int = 800
    overlap_chars: int = 150
    max_chars: int = 1200


@dataclass(frozen=True)
class Chunk:
    index: int
    # 1-based page where the chunk's new text starts; 0 for sources without pages.
    page: int
    text: str


@dataclass(frozen=True)
class _Piece:
    page: int
    text: str


class ChunkingTimedOut(Exception):
    """Chunking ran past its deadline (the text is too large or too odd to split in time)."""


def split_sentences(text: str, deadline: float | None = None) -> list[str]:
    """Sentences of `text`, abbreviations joined to what follows. Linear in the text's length:
    only the end of the newest sentence is checked for an abbreviation, and a merged piece is
    built from its parts once."""
    pieces: list[str] = []
    current: list[str] = []  # the parts of the piece being built
    for count, raw in enumerate(_between(_SENTENCE_END, text)):
        if deadline is not None and count % _DEADLINE_EVERY == 0 and time.monotonic() > deadline:
            raise ChunkingTimedOut
        sentence = raw.strip()
        if not sentence:
            continue
        if current and _ABBREVIATION.search(current[-1], max(0, len(current[-1]) - _ABBREVIATION_TAIL)):
            current.append(sentence)
            continue
        if current:
            pieces.append(" ".join(current))
        current = [sentence]
    if current:
        pieces.append(" ".join(current))
    return pieces


def _between(pattern: re.Pattern[str], text: str) -> Iterator[str]:
    """`pattern.split(text)` one piece at a time: a single split of a large text is one C call
    that holds the GIL (and stalls the worker's event loop) until it is done."""
    start = 0
    for match in pattern.finditer(text):
        yield text[start:match.start()]
        start = match.end()
    yield text[start:]


def _split_long(sentence: str, max_chars: int) -> Iterator[str]:
    """Cut at the last space before the limit; a space-free run longer than the limit is cut at it.
    Walks the sentence by index (never re-slices the rest), so it is linear in its length."""
    start, end = _skip_spaces(sentence, 0), len(sentence)
    while end - start > max_chars:
        cut = sentence.rfind(" ", start, start + max_chars + 1)
        if cut <= start:
            cut = start + max_chars
        part = sentence[start:cut].strip()
        if part:
            yield part
        start = _skip_spaces(sentence, cut)
    rest = sentence[start:end].strip()
    if rest:
        yield rest


def _skip_spaces(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def _pieces(pages: Sequence[tuple[int, str]], max_chars: int, deadline: float | None) -> Iterator[_Piece]:
    for page, text in pages:
        for sentence in split_sentences(text, deadline):
            for part in _split_long(sentence, max_chars):
                yield _Piece(page, part)


def chunk_pages(pages: Sequence[tuple[int, str]], policy: ChunkingPolicy = ChunkingPolicy(),
                deadline: float | None = None) -> list[Chunk]:
    """Chunks in document order, numbered from 0; time linear in the text's length.

    `deadline` (a `time.monotonic()` value) bounds the work: past it, ChunkingTimedOut.
    """
    chunks: list[Chunk] = []
    window: list[_Piece] = []
    fresh = 0  # pieces in `window` that no earlier chunk contained
    size = 0

    def emit() -> None:
        first_new = window[len(window) - fresh]
        chunks.append(Chunk(len(chunks), first_new.page, " ".join(p.text for p in window)))

    for count, piece in enumerate(_pieces(pages, policy.max_chars, deadline)):
        if deadline is not None and count % _DEADLINE_EVERY == 0 and time.monotonic() > deadline:
            raise ChunkingTimedOut
        if fresh and size + 1 + len(piece.text) > policy.target_chars:
            emit()
            window = _overlap(window, policy.overlap_chars)
            fresh, size = 0, sum(len(p.text) + 1 for p in window)
        while not fresh and window and size + 1 + len(piece.text) > policy.max_chars:
            size -= len(window.pop(0).text) + 1  # a long sentence: less overlap, not an oversized chunk
        window.append(piece)
        fresh += 1
        size += len(piece.text) + 1
    if fresh:
        emit()
    return chunks


def _overlap(window: list[_Piece], overlap_chars: int) -> list[_Piece]:
    """The trailing pieces of `window` that fit in `overlap_chars` (never the whole window)."""
    kept: list[_Piece] = []
    size = 0
    for piece in reversed(window[1:]):
        size += len(piece.text) + 1
        if size > overlap_chars:
            break
        kept.append(piece)
    return kept[::-1]
