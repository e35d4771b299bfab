"""gRPC edge: genai.scraper.v1.ScraperService, translating wire <-> domain."""

from __future__ import annotations

import grpc

from genai.scraper.v1 import scraper_pb2, scraper_pb2_grpc
from genai_common.errors import DeadlineExceeded, InvalidInput
from scraper.domain import Outcome, Page
from scraper.scrape import Scraper

SERVICE_NAME = scraper_pb2.DESCRIPTOR.services_by_name["ScraperService"].full_name

OUTCOME_TO_PB = {
    Outcome.OK: scraper_pb2.OUTCOME_OK,
    Outcome.BLOCKED: scraper_pb2.OUTCOME_BLOCKED,
    Outcome.TIMEOUT: scraper_pb2.OUTCOME_TIMEOUT,
    Outcome.HTTP_ERROR: scraper_pb2.OUTCOME_HTTP_ERROR,
    Outcome.TOO_LARGE: scraper_pb2.OUTCOME_TOO_LARGE,
    Outcome.UNSUPPORTED_TYPE: scraper_pb2.OUTCOME_UNSUPPORTED_TYPE,
    Outcome.FETCH_ERROR: scraper_pb2.OUTCOME_FETCH_ERROR,
}


def request_budget(configured: float, remaining: float | None) -> float:
    """Seconds this request may spend: the configured deadline, or less to answer before the
    caller's gRPC deadline (keeping a margin to serialise and send the reply)."""
    if remaining is None:
        return configured
    return min(configured, remaining - min(0.5, remaining * 0.1))


def page_to_pb(page: Page) -> scraper_pb2.Page:
    return scraper_pb2.Page(
        url=page.url, final_url=page.final_url, outcome=OUTCOME_TO_PB[page.outcome], reason=page.reason,
        http_status=page.http_status, bytes=page.bytes, elapsed_ms=page.elapsed_ms, title=page.title,
        text=page.text, content_type=page.content_type,
    )


class ScraperServicer(scraper_pb2_grpc.ScraperServiceServicer):
    def __init__(self, scraper: Scraper, *, max_urls: int, deadline_seconds: float) -> None:
        self._scraper = scraper
        self._max_urls = max_urls
        self._deadline_seconds = deadline_seconds

    async def Scrape(
        self, request: scraper_pb2.ScrapeRequest, context: grpc.aio.ServicerContext
    ) -> scraper_pb2.ScrapeResponse:
        urls = list(request.urls)
        if not urls:
            raise InvalidInput("urls must not be empty")
        if len(urls) > self._max_urls:
            raise InvalidInput(f"at most {self._max_urls} URLs per request, got {len(urls)}")
        budget = request_budget(self._deadline_seconds, context.time_remaining())
        if budget <= 0:
            raise DeadlineExceeded("the request's deadline leaves no time to fetch")
        pages = await self._scraper.scrape(urls, deadline=budget, max_chars=request.max_chars_per_page)
        return scraper_pb2.ScrapeResponse(pages=[page_to_pb(page) for page in pages])
