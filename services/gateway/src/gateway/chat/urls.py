"""Find the web pages a user names in a message: http(s) URLs, trailing punctuation stripped, deduped."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# A URL runs until whitespace or a character that cannot appear unescaped in one.
_URL = re.compile(r"https?://[^\s<>\"'`{}|\\^]+", re.IGNORECASE)
_TRAILING = ".,;:!?*_~"
_CLOSERS = {")": "(", "]": "[", "}": "{"}


def _trim(url: str) -> str:
    """Strip sentence punctuation and unbalanced closing brackets from the end."""
    while url:
        last = url[-1]
        if last in _TRAILING:
            url = url[:-1]
        elif last in _CLOSERS and url.count(last) > url.count(_CLOSERS[last]):
            url = url[:-1]
        else:
            break
    return url


def _valid(url: str) -> bool:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def extract_urls(text: str, limit: int) -> list[str]:
    """The first `limit` distinct http(s) URLs in `text`, in order of appearance."""
    found: list[str] = []
    seen: set[str] = set()
    for match in _URL.finditer(text):
        url = _trim(match.group(0))
        if not _valid(url) or url in seen:
            continue
        seen.add(url)
        found.append(url)
        if len(found) >= limit:
            break
    return found


def without_urls(text: str) -> str:
    """`text` with its URLs taken out (what is left is the question to search documents with)."""
    return " ".join(_URL.sub(" ", text).split())
