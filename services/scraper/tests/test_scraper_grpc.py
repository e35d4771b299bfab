"""The gRPC edge: genai.scraper.v1.ScraperService served in-process on a free port."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from scraper_fakes import FakeInternet, FakeResolver, Reply, SeenRequest, article

from genai.scraper.v1 import scraper_pb2

PAGE = article("Council approves new library", [
    "The city council voted nine to two on Monday to fund a new public library in the harbour district.",
    "Construction is expected to begin next spring and to take about eighteen months to complete.",
])


def local(site, **overrides):
    return {"scraper_allow_private_networks": True, "scraper_allowed_ports": [site.port], **overrides}


async def test_scrape_returns_pages_in_order_with_outcomes(site, serve):
    site.routes["/library"] = Reply(body=PAGE)
    site.routes["/logo.png"] = Reply(headers={"Content-Type": "image/png"}, body=b"\x89PNG")
    stub = await serve(**local(site))
    urls = [site.url("/library"), site.url("/missing"), site.url("/logo.png"), "http://169.254.169.254/"]

    reply = await stub.Scrape(scraper_pb2.ScrapeRequest(urls=urls), timeout=10)

    assert [p.url for p in reply.pages] == urls
    assert [p.outcome for p in reply.pages] == [
        scraper_pb2.OUTCOME_OK, scraper_pb2.OUTCOME_HTTP_ERROR, scraper_pb2.OUTCOME_UNSUPPORTED_TYPE,
        scraper_pb2.OUTCOME_BLOCKED,
    ]
    ok = reply.pages[0]
    assert ok.title == "Council approves new library"
    assert "nine to two" in ok.text and ok.final_url == urls[0]
    assert (ok.http_status, ok.bytes, ok.content_type) == (200, len(PAGE), "text/html")
    assert reply.pages[1].http_status == 404
    assert reply.pages[3].reason  # says why it was refused


async def test_max_chars_per_page_truncates_text(site, serve):
    site.routes["/library"] = Reply(body=PAGE)
    stub = await serve(**local(site))

    reply = await stub.Scrape(scraper_pb2.ScrapeRequest(urls=[site.url("/library")], max_chars_per_page=30), timeout=10)

    assert len(reply.pages[0].text) == 30


async def test_the_callers_grpc_deadline_is_honoured(site, serve):
    async def stall(_: SeenRequest) -> Reply:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    site.routes["/stall"] = stall
    stub = await serve(**local(site, scraper_request_deadline_seconds=60, scraper_fetch_timeout_seconds=60))

    # The server answers inside the caller's 2 s deadline, reporting the page as timed out.
    reply = await stub.Scrape(scraper_pb2.ScrapeRequest(urls=[site.url("/stall")]), timeout=2)

    assert reply.pages[0].outcome == scraper_pb2.OUTCOME_TIMEOUT


async def test_empty_and_oversized_requests_are_invalid(serve):
    stub = await serve(scraper_max_urls_per_request=3, transport=FakeInternet(), resolver=FakeResolver())

    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await stub.Scrape(scraper_pb2.ScrapeRequest(urls=[]), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as too_many:
        await stub.Scrape(scraper_pb2.ScrapeRequest(urls=[f"http://x{i}.example/" for i in range(4)]), timeout=5)

    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 3" in (too_many.value.details() or "")


async def test_health_says_serving(serve):
    stub = await serve(transport=FakeInternet())
    health = health_pb2_grpc.HealthStub(stub.channel)

    overall = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    named = await health.Check(health_pb2.HealthCheckRequest(service="genai.scraper.v1.ScraperService"), timeout=5)

    assert overall.status == named.status == health_pb2.HealthCheckResponse.SERVING
