"""Fetching and extraction through the Scraper against real local HTTP servers."""

from __future__ import annotations

import asyncio
import gzip
import zlib

from prometheus_client import CollectorRegistry
from scraper_fakes import FakeSite, Reply, SeenRequest, article

from scraper.domain import Outcome
from scraper.metrics import ScraperMetrics

PARAGRAPHS = [
    "The river authority said on Tuesday that the new flood barrier had held through the storm surge.",
    "Engineers spent three years designing the barrier, which can be raised in under twenty minutes.",
    "Residents of the lower town, flooded twice in the past decade, welcomed the news with relief.",
]
PAGE = article("Flood barrier holds through storm", PARAGRAPHS)


def local(make_scraper, site: FakeSite, **overrides):
    """A scraper allowed to reach the local site (loopback) and nothing else special."""
    overrides.setdefault("scraper_allowed_ports", [site.port])
    return make_scraper(scraper_allow_private_networks=True, **overrides)


async def test_an_article_page_gives_title_main_text_and_provenance(site, make_scraper):
    site.routes["/news/flood"] = Reply(body=PAGE)

    [page] = await local(make_scraper, site).scrape([site.url("/news/flood")], deadline=10)

    assert page.outcome is Outcome.OK, page.reason
    assert page.title == "Flood barrier holds through storm"
    for paragraph in PARAGRAPHS:
        assert paragraph in page.text
    assert "All rights reserved" not in page.text and "Log in" not in page.text  # boilerplate dropped
    assert page.url == page.final_url == site.url("/news/flood")
    assert (page.http_status, page.bytes, page.content_type) == (200, len(PAGE), "text/html")
    assert page.reason == ""


async def test_redirects_are_followed_and_reported_as_the_final_url(site, make_scraper):
    site.routes["/old"] = Reply(301, headers={"Location": "/news/flood"})
    site.routes["/news/flood"] = Reply(body=PAGE)

    [page] = await local(make_scraper, site).scrape([site.url("/old")], deadline=10)

    assert page.outcome is Outcome.OK
    assert page.final_url == site.url("/news/flood")
    assert PARAGRAPHS[0] in page.text


async def test_http_errors_are_reported_with_their_status(site, make_scraper):
    site.routes["/boom"] = Reply(500, body=b"<p>oops</p>")

    missing, broken = await local(make_scraper, site).scrape([site.url("/nothing"), site.url("/boom")], deadline=10)

    assert (missing.outcome, missing.http_status) == (Outcome.HTTP_ERROR, 404)
    assert (broken.outcome, broken.http_status) == (Outcome.HTTP_ERROR, 500)
    assert "500" in broken.reason and broken.text == ""


async def test_a_stalling_server_times_out_and_the_others_still_answer(site, make_scraper):
    async def stall(_: SeenRequest) -> Reply:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    site.routes["/stall"] = stall
    site.routes["/news/flood"] = Reply(body=PAGE)
    scraper = local(make_scraper, site, scraper_fetch_timeout_seconds=1.5)

    stalled, fine = await scraper.scrape([site.url("/stall"), site.url("/news/flood")], deadline=10)

    assert stalled.outcome is Outcome.TIMEOUT
    assert fine.outcome is Outcome.OK


async def test_the_request_deadline_bounds_every_url(site, make_scraper):
    async def stall(_: SeenRequest) -> Reply:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    site.routes["/stall"] = stall
    patient = local(make_scraper, site, scraper_fetch_timeout_seconds=60)
    [page] = await patient.scrape([site.url("/stall")], deadline=0.3)

    assert page.outcome is Outcome.TIMEOUT


async def test_bodies_over_the_cap_are_too_large(site, make_scraper):
    big = b"<p>" + b"a" * (300 * 1024) + b"</p>"
    site.routes["/declared"] = Reply(body=big)  # Content-Length says it up front
    site.routes["/streamed"] = Reply(chunks=[big[i:i + 8192] for i in range(0, len(big), 8192)])
    scraper = local(make_scraper, site, scraper_max_response_bytes=256 * 1024)

    declared, streamed = await scraper.scrape([site.url("/declared"), site.url("/streamed")], deadline=10)

    assert declared.outcome is Outcome.TOO_LARGE
    assert streamed.outcome is Outcome.TOO_LARGE


async def test_a_gzip_bomb_is_stopped_at_the_decoded_cap(site, make_scraper):
    bomb = gzip.compress(b"<p>" + b"\0" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 256 * 1024  # small on the wire, 64 MiB once inflated
    site.routes["/bomb"] = Reply(headers={"Content-Type": "text/html", "Content-Encoding": "gzip"}, body=bomb)
    scraper = local(make_scraper, site, scraper_max_response_bytes=1024 * 1024)

    [page] = await scraper.scrape([site.url("/bomb")], deadline=10)

    assert page.outcome is Outcome.TOO_LARGE
    assert "decoded" in page.reason


async def test_compressed_pages_are_decoded(site, make_scraper):
    site.routes["/gz"] = Reply(headers={"Content-Type": "text/html", "Content-Encoding": "gzip"},
                               body=gzip.compress(PAGE))
    site.routes["/deflate"] = Reply(headers={"Content-Type": "text/html", "Content-Encoding": "deflate"},
                                    body=zlib.compress(PAGE))

    pages = await local(make_scraper, site).scrape([site.url("/gz"), site.url("/deflate")], deadline=10)

    assert [p.outcome for p in pages] == [Outcome.OK, Outcome.OK]
    assert all(PARAGRAPHS[1] in p.text and p.bytes == len(PAGE) for p in pages)


async def test_non_html_content_is_refused_without_reading_it(site, make_scraper):
    site.routes["/logo.png"] = Reply(headers={"Content-Type": "image/png"}, body=b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    site.routes["/notes.txt"] = Reply(headers={"Content-Type": "text/plain; charset=latin-1"},
                                      body="café notes".encode("latin-1"))

    png, text = await local(make_scraper, site).scrape([site.url("/logo.png"), site.url("/notes.txt")], deadline=10)

    assert png.outcome is Outcome.UNSUPPORTED_TYPE and "image/png" in png.reason
    assert png.bytes == 0 and png.content_type == "image/png"
    assert (text.outcome, text.text) == (Outcome.OK, "café notes")


async def test_urls_are_fetched_concurrently(site, make_scraper):
    expected = 8
    everyone_arrived = asyncio.Event()

    async def slow(_: SeenRequest) -> Reply:
        if site.in_flight >= expected:
            everyone_arrived.set()
        try:
            async with asyncio.timeout(5):  # a serial scraper would leave the first one waiting here
                await everyone_arrived.wait()
        except TimeoutError:
            pass
        return Reply(body=PAGE)

    urls = [site.url(f"/slow/{i}") for i in range(expected)]
    for i in range(expected):
        site.routes[f"/slow/{i}"] = slow

    pages = await local(make_scraper, site).scrape(urls, deadline=20)

    assert [p.outcome for p in pages] == [Outcome.OK] * expected
    assert site.max_in_flight == expected


async def test_pages_come_back_in_request_order_and_duplicates_are_fetched_once(site, make_scraper):
    site.routes["/a"] = Reply(body=article("Page A", PARAGRAPHS[:2]))
    site.routes["/b"] = Reply(body=article("Page B", PARAGRAPHS[1:]))
    urls = [site.url("/b"), site.url("/missing"), site.url("/a"), site.url("/b")]

    pages = await local(make_scraper, site).scrape(urls, deadline=10)

    assert [p.url for p in pages] == urls
    assert [p.title for p in pages] == ["Page B", "", "Page A", "Page B"]
    assert sorted(r.path for r in site.requests) == ["/a", "/b", "/missing"]


async def test_text_is_truncated_to_the_requested_length(site, make_scraper):
    site.routes["/news/flood"] = Reply(body=PAGE)
    scraper = local(make_scraper, site, scraper_max_chars_per_page=40)

    [default] = await scraper.scrape([site.url("/news/flood")], deadline=10)
    [asked] = await scraper.scrape([site.url("/news/flood")], deadline=10, max_chars=120)

    assert len(default.text) == 40 and len(asked.text) == 120


async def test_outcomes_are_counted_in_metrics(site, make_scraper):
    site.routes["/news/flood"] = Reply(body=PAGE)
    registry = CollectorRegistry()
    scraper = local(make_scraper, site, metrics=ScraperMetrics(registry))

    await scraper.scrape([site.url("/news/flood"), site.url("/missing")], deadline=10)

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    assert value("scraper_fetches_total", outcome="ok") == 1
    assert value("scraper_fetches_total", outcome="http_error") == 1
    assert value("scraper_fetch_duration_seconds_count", outcome="ok") == 1
    assert value("scraper_extract_duration_seconds_count") == 1


async def test_blocks_are_counted_by_reason_and_bytes_read_are_counted(site, make_scraper):
    site.routes["/news/flood"] = Reply(body=PAGE)
    registry = CollectorRegistry()
    metrics = ScraperMetrics(registry)
    scraper = make_scraper(scraper_allowed_ports=[site.port, 80], metrics=metrics)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    # Every reason has its series before any block happens.
    assert value("scraper_blocked_total", reason="forbidden_address") == 0
    await scraper.scrape([
        site.url("/news/flood"),                          # loopback: internal, not allowed here
        "http://169.254.169.254/latest/meta-data/",       # cloud metadata: never
        "ftp://example.org/file", "http://user:pw@example.org/", "http://example.org:8081/",
    ], deadline=10)
    for reason in ("internal_address", "forbidden_address", "scheme", "credentials", "port"):
        assert value("scraper_blocked_total", reason=reason) == 1, reason
    assert value("scraper_fetched_bytes_total") == 0

    await local(make_scraper, site, metrics=metrics).scrape([site.url("/news/flood")], deadline=10)
    assert value("scraper_fetched_bytes_total") == len(PAGE)
