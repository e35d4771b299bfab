"""Main-text extraction (trafilatura). Runs inside process-pool workers: top-level, picklable,
pure functions of their arguments.

Options were chosen on the article-extraction dev split (bench/extraction_f1.py):
`favor_precision` without comments scores F1 0.960 there, against 0.954 for the defaults. The
`fast` mode (no fallback extractors, about half the CPU) alone scores 0.951, because on a few
pages its main heuristic finds (almost) nothing, which is what the fallbacks are for: so each page
is extracted fast first, and again with the fallbacks only when that found under
`FALLBACK_BELOW_CHARS` characters (F1 0.968; one dev page in 54 takes the second pass, the
plateau runs from 1 to 500 characters). The options are built once per process (trafilatura
reads its configuration to build them) and copied per page with its URL.

Extraction time grows faster than page size (a 5 MB page of links takes close to a minute), so
in a pool worker each page runs under a timer (`warm_up(page_seconds)`): a page over the limit
fails alone and the worker moves on to the next instead of staying busy for every caller.
"""

from __future__ import annotations

import codecs
import logging
import signal
from copy import copy
from dataclasses import dataclass
from functools import cache
from types import FrameType

import trafilatura
from lxml.html import HtmlElement
from trafilatura.metadata import extract_title
from trafilatura.settings import Extractor
from trafilatura.utils import load_html

from scraper.domain import TEXT_TYPES

FALLBACK_BELOW_CHARS = 250

# Seconds one page may take; set by `warm_up` in pool workers only (the timer needs the main
# thread of a process of our own), 0 = no limit.
_page_seconds = 0.0


class _TooSlow(BaseException):
    """Raised by the page timer; a BaseException so that no `except Exception` inside the
    extraction library swallows it."""


@dataclass(frozen=True)
class Extracted:
    title: str
    text: str


def extract_page(body: bytes, url: str, media_type: str = "text/html", charset: str | None = None) -> Extracted:
    """Title and main text of an HTML page (or a plain-text body as it is)."""
    if media_type in TEXT_TYPES:
        return Extracted("", _decode(body, charset).strip())
    tree = load_html(body)
    if tree is None:
        return Extracted("", "")
    title = extract_title(tree) or ""
    text = _main_text(tree, url, fast=True)
    if len(text) < FALLBACK_BELOW_CHARS:
        text = _main_text(tree, url, fast=False)
    return Extracted(" ".join(title.split()), text)


def _main_text(tree: HtmlElement, url: str, *, fast: bool) -> str:
    options = copy(_options(fast))  # trafilatura copies shared options before it changes them; the URL is ours
    options.url = url
    return (trafilatura.extract(tree, options=options) or "").strip()  # it works on a copy of the tree


@cache
def _options(fast: bool) -> Extractor:
    return Extractor(output_format="txt", precision=True, comments=False, tables=True, fast=fast)


def extract_batch(pages: list[tuple[bytes, str, str, str | None]]) -> list[Extracted | str]:
    """Extract several pages in one trip to a worker; a page that fails gives its error text."""
    results: list[Extracted | str] = []
    for body, url, media_type, charset in pages:
        try:
            results.append(_extract_in_time(body, url, media_type, charset))
        except _TooSlow:
            results.append(f"extraction took longer than {_page_seconds:g}s")
        except Exception as exc:  # one bad page must not fail its batch-mates
            results.append(f"extraction failed: {type(exc).__name__}")
    return results


def warm_up(page_seconds: float = 0.0) -> None:
    """Process-pool initializer: arm the per-page time limit, quiet the extractor's logs,
    import and exercise it once."""
    global _page_seconds
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    logging.getLogger("htmldate").setLevel(logging.ERROR)
    if page_seconds > 0:
        signal.signal(signal.SIGALRM, _too_slow)
        _page_seconds = page_seconds
    extract_page(b"<html><head><title>t</title></head><body><p>warm up</p></body></html>", "http://localhost/")


def _extract_in_time(body: bytes, url: str, media_type: str, charset: str | None) -> Extracted:
    if not _page_seconds:
        return extract_page(body, url, media_type, charset)
    signal.setitimer(signal.ITIMER_REAL, _page_seconds)
    try:
        return extract_page(body, url, media_type, charset)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _too_slow(signum: int, frame: FrameType | None) -> None:
    raise _TooSlow


def _decode(body: bytes, charset: str | None) -> str:
    if charset:
        try:
            return body.decode(codecs.lookup(charset).name, errors="replace")
        except LookupError:
            pass
    return body.decode("utf-8", errors="replace")
