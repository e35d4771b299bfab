"""Find the web pages a user names in a message: http(s) URLs, trailing punctuation stripped, deduped.

Handles the ways people paste links: in prose ("see https://a.example/x."), in brackets
("(https://a.example/x)"), as Markdown links ("[text](https://a.example/x)" and
"[https://a.example/x](https://a.example/x)"), in quotes, and before CJK punctuation.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# CJK punctuation (full stop, commas, colons, brackets...) ends a URL: such text has no spaces.
_CJK_PUNCTUATION = "\u3001\u3002\u300c-\u3011\uff01\uff08\uff09\uff0c\uff1a\uff1b\uff1f"
# A URL runs until whitespace or a character that cannot appear unescaped in one; a "](" ends it
# too (a Markdown link whose text is itself the URL: "[url](url)").
# A URL is at most MAX_URL_CHARS long (the rest of a longer run is not one); each match is bounded.
MAX_URL_CHARS = 4096
_URL = re.compile(rf"https?://(?:[^\s<>\"`{{}}|\\^\]{_CJK_PUNCTUATION}]|\](?!\()){{1,{MAX_URL_CHARS}}}",
                  re.IGNORECASE)
_TRAILING = ".,;:!?*_~'"
_CLOSERS = {")": "(", "]": "["}
_STRIPPABLE = _TRAILING + "".join(_CLOSERS)


def _trim(url: str) -> str:
    """Strip sentence punctuation, quotes and unbalanced closing brackets from the end.

    Walking back from the end, punctuation goes, and a closing bracket goes while the URL has
    more of it than of its opening bracket. Done with string methods only (each linear, in C):
    for each bracket kind, the first one from the end that must stay is found with one rsplit.
    """
    body = url.rstrip(_STRIPPABLE)
    tail = url[len(body):]
    keep = 0  # the tail's first `keep` characters stay
    for closer, opener in _CLOSERS.items():
        excess = max(url.count(closer) - url.count(opener), 0)
        if tail.count(closer) > excess:  # the (excess + 1)-th from the end stays, and all before it
            keep = max(keep, len(tail.rsplit(closer, excess + 1)[0]) + 1)
    return body + tail[:keep]


def _key(url: str) -> str | None:
    """What makes two URLs the same page (scheme and host in any case, no fragment); None if invalid."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path or '/'}{query}"


def extract_urls(text: str, limit: int) -> list[str]:
    """The first `limit` distinct http(s) URLs in `text`, in order of appearance."""
    found: list[str] = []
    seen: set[str] = set()
    for match in _URL.finditer(text):
        if len(found) >= limit:
            break
        url = _trim(match.group(0))
        key = _key(url)
        if key is None or key in seen:
            continue
        seen.add(key)
        found.append(url)
    return found


def without_urls(text: str) -> str:
    """`text` with its URLs taken out (what is left is the question to search documents with)."""
    return " ".join(_URL.sub(" ", text).split())
