"""Extracted text → clean text: Unicode-normalised, no NULs or stray controls, words that a line
break hyphenated joined again, whitespace collapsed (paragraph breaks kept as blank lines).

Cleaning runs in a worker thread, and every step is one C call (normalisation, a regex) that
holds the GIL for as long as it runs: on a whole 20 MB document that stalled the worker's event
loop (heartbeats, progress) for half a second at a time. So the text is cleaned in slices of about
`SLICE_CHARS`, cut where no step can see across the cut, and each call is short. The result is
the same as cleaning the whole text at once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

# Control and format characters other than tab/newline (NUL, soft hyphen, zero-width, bidi...).
_INVISIBLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
# "infor-\nmation" → "information": a letter, a hyphen at the end of a line, a lower-case letter.
_HYPHENATED = re.compile(r"(?<=[^\W\d_])-[ \t]*\n[ \t]*(?=[^\W\d_])")
_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")
_SPACES = re.compile(r"\s+")
# Where each step may cut the text (a position between two characters), so that no match and
# no normalisation spans a cut:
# - normalisation, line ends, invisibles: between two printable ASCII characters (no composition,
#   reordering or "\r\n" spans such a pair);
# - joining hyphenated words (a match is "-", tabs/spaces, "\n", tabs/spaces between two letters):
#   between two characters that are neither;
# - whitespace runs and blank lines: between two characters that are not whitespace.
_ASCII_CUT = re.compile(r"(?<=[!-~])(?=[!-~])")
_HYPHEN_CUT = re.compile(r"(?<=[^-\t \n])(?=[^-\t \n])")
_WORD_CUT = re.compile(r"(?<=\S)(?=\S)")

SLICE_CHARS = 64 * 1024


def _dehyphenate(text: str) -> str:
    def join(match: re.Match[str]) -> str:
        following = text[match.end()] if match.end() < len(text) else ""
        return "" if following.islower() else "-"

    return _HYPHENATED.sub(join, text)


def _slices(text: str, cut: re.Pattern[str]) -> Iterator[str]:
    """`text` in pieces of about SLICE_CHARS, cut where `cut` matches; each search looks at one
    window of SLICE_CHARS (a text with no cut point ends as a longer piece, never a long search)."""
    start = at = 0
    while len(text) - at > SLICE_CHARS:
        found = cut.search(text, at + SLICE_CHARS, at + 2 * SLICE_CHARS)
        if found is None:
            at += SLICE_CHARS
            continue
        yield text[start:found.start()]
        start = at = found.start()
    yield text[start:]


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _INVISIBLE.sub("", text)


def _paragraphs(text: str) -> Iterator[str]:
    """Paragraphs, whitespace collapsed, a slice at a time; a paragraph may span slices (each
    cut is inside a word, so its parts collapse alone)."""
    parts: list[str] = []
    for piece in _slices(text, _WORD_CUT):
        blocks = _BLANK_LINES.split(piece)
        for block in blocks[:-1]:
            parts.append(_SPACES.sub(" ", block))
            yield "".join(parts).strip()
            parts = []
        parts.append(_SPACES.sub(" ", blocks[-1]))
    yield "".join(parts).strip()


def clean_text(text: str) -> str:
    """Paragraphs separated by one blank line; inside a paragraph, single spaces."""
    text = "".join(_normalise(piece) for piece in _slices(text, _ASCII_CUT))
    text = "".join(_dehyphenate(piece) for piece in _slices(text, _HYPHEN_CUT))
    return "\n\n".join(p for p in _paragraphs(text) if p)
