"""Extracted text → clean text: Unicode-normalised, no NULs or stray controls, words that a line
break hyphenated joined again, whitespace collapsed (paragraph breaks kept as blank lines).
"""

from __future__ import annotations

import re
import unicodedata

# Control and format characters other than tab/newline (NUL, soft hyphen, zero-width, bidi...).
_INVISIBLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
# "infor-\nmation" → "information": a letter, a hyphen at the end of a line, a lower-case letter.
_HYPHENATED = re.compile(r"(?<=[^\W\d_])-[ \t]*\n[ \t]*(?=[^\W\d_])")
_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")
_SPACES = re.compile(r"\s+")


def _dehyphenate(text: str) -> str:
    def join(match: re.Match[str]) -> str:
        following = text[match.end()] if match.end() < len(text) else ""
        return "" if following.islower() else "-"

    return _HYPHENATED.sub(join, text)


def clean_text(text: str) -> str:
    """Paragraphs separated by one blank line; inside a paragraph, single spaces."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", text)
    text = _dehyphenate(text)
    paragraphs = (_SPACES.sub(" ", block).strip() for block in _BLANK_LINES.split(text))
    return "\n\n".join(p for p in paragraphs if p)
