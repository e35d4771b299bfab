"""Clean pages → overlapping, sentence-aligned chunks that remember their page.

Sentences are packed into chunks of about `target_chars`; the last sentences of a chunk (up
to `overlap_chars`) open the next one. A sentence longer than `max_chars` is cut at spaces,
never inside a word (only a single "word" longer than `max_chars`, such as a run of CJK text
without spaces, is cut at the limit). The same text always gives the same chunks, so a
re-delivered document overwrites its own points.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# After ., !, ? or … (and closing quotes/brackets), whitespace, then something that can start
# a sentence; or after CJK full stops. Blank lines (paragraphs) always end a sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+"
                           r"(?=[\"'“‘(\[]?[A-Z0-9À-ÖØ-Þ\u0370-\u03ff\u0400-\u04ff\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af])"
                           r"|(?<=[。！？])\s*|\n\n")
# A few abbreviations that end in "." without ending a sentence.
_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|cf|vs|al|Fig|Figs|Eq|Eqs|Ref|Refs|No|Dr|Mr|Mrs|Ms|Prof|St)|\b[A-Z])\.$")


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


def split_sentences(text: str) -> list[str]:
    pieces: list[str] = []
    for raw in _SENTENCE_END.split(text):
        sentence = raw.strip()
        if not sentence:
            continue
        if pieces and _ABBREVIATION.search(pieces[-1]):
            pieces[-1] = f"{pieces[-1]} {sentence}"
        else:
            pieces.append(sentence)
    return pieces


def _split_long(sentence: str, max_chars: int) -> Iterator[str]:
    """Cut at the last space before the limit; a space-free run longer than the limit is cut at it."""
    rest = sentence
    while len(rest) > max_chars:
        cut = rest.rfind(" ", 0, max_chars + 1)
        if cut <= 0:
            cut = max_chars
        yield rest[:cut].strip()
        rest = rest[cut:].strip()
    if rest:
        yield rest


def _pieces(pages: Sequence[tuple[int, str]], max_chars: int) -> Iterator[_Piece]:
    for page, text in pages:
        for sentence in split_sentences(text):
            for part in _split_long(sentence, max_chars):
                yield _Piece(page, part)


def chunk_pages(pages: Sequence[tuple[int, str]], policy: ChunkingPolicy = ChunkingPolicy()) -> list[Chunk]:
    """Chunks in document order, numbered from 0."""
    chunks: list[Chunk] = []
    window: list[_Piece] = []
    fresh = 0  # pieces in `window` that no earlier chunk contained
    size = 0

    def emit() -> None:
        first_new = window[len(window) - fresh]
        chunks.append(Chunk(len(chunks), first_new.page, " ".join(p.text for p in window)))

    for piece in _pieces(pages, policy.max_chars):
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
