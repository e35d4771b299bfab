"""Fixtures of the scraper's tests: one extraction pool per session, local sites, fakes."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client import CollectorRegistry
from scraper_fakes import FakeResolver, FakeSite

from genai.scraper.v1 import scraper_pb2_grpc
from scraper.app import build_scraper, build_server, http_transport
from scraper.extract import extract_batch
from scraper.extractor import PoolExtractor, process_pool
from scraper.guard import Resolver
from scraper.metrics import ScraperMetrics
from scraper.scrape import Scraper
from scraper.settings import ScraperSettings
from tests.support.procs import free_port

_server_ids = itertools.count()


@pytest.fixture(scope="session")
def extraction_pool() -> Iterator[ProcessPoolExecutor]:
    pool = process_pool(2)
    warm_page = [(b"<p>warm</p>", "http://localhost/", "text/html", None)]
    list(pool.map(extract_batch, [warm_page, warm_page]))  # both workers up before any timed test
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
async def site() -> AsyncIterator[FakeSite]:
    async with FakeSite() as running:
        yield running


def settings_for(**overrides: Any) -> ScraperSettings:
    return ScraperSettings(**overrides)


MakeScraper = Callable[..., Scraper]


@pytest.fixture
async def make_scraper(extraction_pool: ProcessPoolExecutor) -> AsyncIterator[MakeScraper]:
    """Build a Scraper from settings overrides; DNS is a FakeResolver unless one is given."""
    transports: list[httpx.AsyncBaseTransport] = []

    def factory(*, transport: httpx.AsyncBaseTransport | None = None, resolver: Resolver | None = None,
                metrics: ScraperMetrics | None = None, **overrides: Any) -> Scraper:
        settings = settings_for(**overrides)
        transport = transport or http_transport(settings)
        transports.append(transport)
        return build_scraper(
            settings, transport=transport, extractor=PoolExtractor(extraction_pool, workers=2),
            metrics=metrics or ScraperMetrics(CollectorRegistry()), resolver=resolver or FakeResolver(),
        )

    yield factory
    for transport in transports:
        await transport.aclose()


@pytest.fixture
async def serve(make_scraper: MakeScraper) -> AsyncIterator[Callable[..., Any]]:
    """Start an in-process gRPC scraper on a free port; returns its stub (`.channel` is the channel)."""
    started: list[tuple[Any, grpc.aio.Channel]] = []

    async def start(*, transport: httpx.AsyncBaseTransport | None = None, resolver: Resolver | None = None,
                    **overrides: Any) -> scraper_pb2_grpc.ScraperServiceStub:
        settings = settings_for(scraper_port=free_port(), **overrides)
        scraper = make_scraper(transport=transport, resolver=resolver, **overrides)
        server = build_server(settings, scraper, metric_prefix=f"scraper_test{next(_server_ids)}")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        started.append((server, channel))
        stub = scraper_pb2_grpc.ScraperServiceStub(channel)
        stub.channel = channel  # type: ignore[attr-defined]
        return stub

    yield start
    for server, channel in started:
        await channel.close()
        await server.stop(0)
