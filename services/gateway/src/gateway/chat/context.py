"""Gather the sources of one chat: scrape the named URLs and search the documents, concurrently.

Each backend has its own deadline; one that fails or is late is named in `unavailable` and the
chat goes on with what the other returned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from gateway.chat.sources import Source, assemble_sources
from gateway.chat.urls import extract_urls, without_urls
from gateway.peer_models import Passage, ScrapedPage
from genai_common.errors import DeadlineExceeded, ServiceError

log = logging.getLogger(__name__)

T = TypeVar("T")

# The retriever refuses longer queries (and its embedding model reads far fewer characters).
MAX_QUERY_CHARS = 2000
# Questions longer than this are searched for URLs off the event loop.
INLINE_QUESTION_CHARS = 16 * 1024


class Scraper(Protocol):
    async def scrape(self, urls: Sequence[str], *, max_chars_per_page: int = 0,
                     deadline: float | None = None) -> list[ScrapedPage]: ...


class Retriever(Protocol):
    async def search(self, query: str, *, top_k: int, score_threshold: float | None = None,
                     document_ids: Sequence[str] = (), mode: str | None = None,
                     deadline: float | None = None, tenant: str = "default") -> list[Passage]: ...


@dataclass(frozen=True)
class ContextRequest:
    question: str
    scrape: bool = True
    rag: bool = True
    top_k: int = 4
    score_threshold: float | None = None
    # Whose uploaded documents the answer may cite (the caller's, gateway.auth).
    tenant: str = "default"


@dataclass(frozen=True)
class ChatContext:
    sources: list[Source] = field(default_factory=list)
    # Backends ("scraper", "retriever") that failed or timed out.
    unavailable: list[str] = field(default_factory=list)
    # Pages the user named that gave no text: (url, why), why like "http error" or "scraper unavailable".
    unread: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class GatherLimits:
    """GATEWAY_SCRAPE_MAX_URLS, the characters read per page, and each backend's deadline (seconds)."""

    max_urls: int
    max_chars_per_page: int
    scrape_deadline: float
    retrieve_deadline: float


# Told how each backend call ended: (backend, outcome ok | failed | timeout, seconds).
BackendObserver = Callable[[str, str, float], None]


class ContextGatherer:
    def __init__(self, scraper: Scraper, retriever: Retriever, limits: GatherLimits,
                 observe: BackendObserver = lambda _backend, _outcome, _seconds: None) -> None:
        self._scraper = scraper
        self._retriever = retriever
        self._limits = limits
        self._observe = observe

    def _read_question(self, request: ContextRequest) -> tuple[list[str], str]:
        urls = extract_urls(request.question, self._limits.max_urls) if request.scrape else []
        query = without_urls(request.question)[:MAX_QUERY_CHARS] if request.rag else ""
        return urls, query

    async def gather(self, request: ContextRequest) -> ChatContext:
        # Linear, and ~0.1 us a character: a long message is read in a thread (URLs are bounded
        # in length, so the GIL is let go between them) rather than holding the event loop.
        if len(request.question) > INLINE_QUESTION_CHARS:
            urls, query = await asyncio.to_thread(self._read_question, request)
        else:
            urls, query = self._read_question(request)
        search = bool(query)
        if not urls and not search:
            return ChatContext()
        pages, passages = await asyncio.gather(
            self._bounded("scraper", self._pages(urls) if urls else None, self._limits.scrape_deadline),
            self._bounded("retriever", self._passages(query, request) if search else None,
                          self._limits.retrieve_deadline),
        )
        unavailable = [name for name, got in (("scraper", pages), ("retriever", passages)) if got is None]
        return ChatContext(assemble_sources(pages or [], passages or []), unavailable, _unread(urls, pages))

    async def _pages(self, urls: list[str]) -> list[ScrapedPage]:
        pages = await self._scraper.scrape(urls, max_chars_per_page=self._limits.max_chars_per_page,
                                           deadline=self._limits.scrape_deadline)
        skipped = sum(1 for p in pages if not p.ok)
        if skipped:
            log.info("scraper returned %d of %d pages without text", skipped, len(pages))
        return pages

    async def _passages(self, query: str, request: ContextRequest) -> list[Passage]:
        return await self._retriever.search(query, top_k=request.top_k,
                                            score_threshold=request.score_threshold,
                                            deadline=self._limits.retrieve_deadline, tenant=request.tenant)

    async def _bounded(self, backend: str, call: Awaitable[list[T]] | None, deadline: float) -> list[T] | None:
        """The call's result; [] when there was nothing to ask; None when the backend failed."""
        if call is None:
            return []
        started = time.perf_counter()
        try:
            # The peer call has its own gRPC deadline; this bound also holds for any other transport.
            async with asyncio.timeout(deadline + 0.5):
                result = await call
        except (ServiceError, TimeoutError) as exc:
            log.warning("%s unavailable: %s", backend, getattr(exc, "message", None) or type(exc).__name__)
            late = isinstance(exc, (TimeoutError, DeadlineExceeded))
            self._observe(backend, "timeout" if late else "failed", time.perf_counter() - started)
            return None
        self._observe(backend, "ok", time.perf_counter() - started)
        return result


def _unread(urls: list[str], pages: list[ScrapedPage] | None) -> list[tuple[str, str]]:
    if pages is None:
        return [(url, "scraper unavailable") for url in urls]
    return [(p.url, p.outcome.replace("_", " ") if not p.ok else "no text") for p in pages
            if not (p.ok and p.text.strip())]
