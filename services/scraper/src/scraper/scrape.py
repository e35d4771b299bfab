"""The Scrape use case: many URLs at once, each guarded, fetched, extracted, with provenance."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from scraper.domain import FetchFailed, Outcome, Page, Trace
from scraper.extract import Extracted
from scraper.extractor import ExtractionFailed, TextExtractor
from scraper.fetch import Fetched
from scraper.metrics import ScraperMetrics

log = logging.getLogger(__name__)

NOTHING = Extracted("", "")


class PageFetcher(Protocol):
    async def fetch(self, trace: Trace) -> Fetched: ...


@dataclass(frozen=True)
class ScrapeLimits:
    max_concurrency: int = 128  # URLs in flight in this process, all requests together
    fetch_timeout: float = 8.0  # one URL, redirects and extraction included
    default_chars: int = 20_000
    max_chars: int = 200_000


class Scraper:
    def __init__(self, fetcher: PageFetcher, extractor: TextExtractor, metrics: ScraperMetrics,
                 limits: ScrapeLimits) -> None:
        self._fetcher = fetcher
        self._extractor = extractor
        self._metrics = metrics
        self._limits = limits
        self._slots = asyncio.Semaphore(limits.max_concurrency)

    async def scrape(self, urls: Sequence[str], *, deadline: float, max_chars: int = 0) -> list[Page]:
        """One Page per URL, in order; each distinct URL is fetched once; nothing outlives `deadline` seconds."""
        chars = min(max_chars or self._limits.default_chars, self._limits.max_chars)
        ends_at = asyncio.get_running_loop().time() + deadline
        unique = list(dict.fromkeys(urls))
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._one(url, ends_at, chars)) for url in unique]
        pages = {url: task.result() for url, task in zip(unique, tasks, strict=True)}
        return [pages[url] for url in urls]

    async def _one(self, url: str, ends_at: float, chars: int) -> Page:
        trace = Trace(url)
        started = time.perf_counter()
        budget = min(ends_at, asyncio.get_running_loop().time() + self._limits.fetch_timeout)
        extracted = NOTHING
        blocked = None
        try:
            async with asyncio.timeout_at(budget):
                async with self._slots:
                    extracted = await self._fetch_and_extract(trace)
            outcome, reason = Outcome.OK, "" if extracted.text else "no main text found"
        except FetchFailed as exc:
            outcome, reason, blocked = exc.outcome, exc.reason, exc.blocked
        except TimeoutError:
            outcome, reason = Outcome.TIMEOUT, "no complete answer before the deadline"
        except Exception:  # one URL's unexpected failure must not sink the others
            log.exception("unexpected failure while scraping a URL")
            outcome, reason = Outcome.FETCH_ERROR, "internal error"
        elapsed = time.perf_counter() - started
        self._metrics.observe_fetch(outcome, elapsed, fetched_bytes=trace.bytes, blocked=blocked)
        log.debug("scraped", extra={"outcome": outcome.value, "elapsed_ms": int(elapsed * 1000)})
        return Page(
            url=url, final_url=trace.final_url, outcome=outcome, reason=reason, http_status=trace.http_status,
            bytes=trace.bytes, elapsed_ms=int(elapsed * 1000), title=extracted.title,
            text=extracted.text[:chars], content_type=trace.content_type,
        )

    async def _fetch_and_extract(self, trace: Trace) -> Extracted:
        fetched = await self._fetcher.fetch(trace)
        started = time.perf_counter()
        try:
            return await self._extractor.extract(fetched.body, trace.final_url, fetched.media_type, fetched.charset)
        except ExtractionFailed as exc:
            raise FetchFailed(Outcome.FETCH_ERROR, str(exc)) from exc
        finally:
            self._metrics.extract_duration.observe(time.perf_counter() - started)
