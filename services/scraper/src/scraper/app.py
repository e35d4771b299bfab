"""Composition root: wires settings into the guard, fetcher, extractor pool and gRPC server."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

import httpx

from genai.scraper.v1 import scraper_pb2_grpc
from genai_common.grpc_server import GrpcServer
from genai_common.lifecycle import shutdown_event
from genai_common.metrics import record_build_info
from genai_common.ops_server import OpsServer
from scraper.extractor import PoolExtractor, TextExtractor, available_cpus, process_pool
from scraper.fetch import Fetcher, FetchOptions, build_transport
from scraper.guard import Policy, Resolver, SystemResolver, UrlGuard
from scraper.metrics import ScraperMetrics
from scraper.scrape import ScrapeLimits, Scraper
from scraper.servicer import SERVICE_NAME, ScraperServicer
from scraper.settings import ScraperSettings

log = logging.getLogger(__name__)


def http_transport(settings: ScraperSettings) -> httpx.AsyncBaseTransport:
    return build_transport(max_connections=settings.scraper_max_concurrency)


def build_scraper(
    settings: ScraperSettings, *, transport: httpx.AsyncBaseTransport, extractor: TextExtractor,
    metrics: ScraperMetrics, resolver: Resolver | None = None,
) -> Scraper:
    policy = Policy.build(
        allowed_ports=settings.scraper_allowed_ports, allow_private=settings.scraper_allow_private_networks,
        allowlist=settings.scraper_allowlist,
    )
    guard = UrlGuard(policy, resolver or SystemResolver(settings.scraper_resolve_timeout_seconds))
    fetcher = Fetcher(transport, guard, FetchOptions(
        user_agent=settings.scraper_user_agent, connect_timeout=settings.scraper_connect_timeout_seconds,
        read_timeout=settings.scraper_fetch_timeout_seconds, max_bytes=settings.scraper_max_response_bytes,
        max_redirects=settings.scraper_max_redirects,
    ))
    limits = ScrapeLimits(
        max_concurrency=settings.scraper_max_concurrency, fetch_timeout=settings.scraper_fetch_timeout_seconds,
        default_chars=settings.scraper_max_chars_per_page, max_chars=settings.scraper_max_chars_per_page_limit,
    )
    return Scraper(fetcher, extractor, metrics, limits)


def build_server(settings: ScraperSettings, scraper: Scraper, *, metric_prefix: str = "scraper") -> GrpcServer:
    servicer = ScraperServicer(
        scraper, max_urls=settings.scraper_max_urls_per_request,
        deadline_seconds=settings.scraper_request_deadline_seconds,
    )
    return GrpcServer(
        host=settings.scraper_host, port=settings.scraper_port, metric_prefix=metric_prefix,
        service_names=[SERVICE_NAME],
        register=lambda server: scraper_pb2_grpc.add_ScraperServiceServicer_to_server(servicer, server),
    )


async def run(settings: ScraperSettings) -> None:
    """Serve until SIGTERM: NOT_SERVING -> stop intake, drain -> close client and pool -> return."""
    stop = shutdown_event()
    serving = asyncio.Event()
    record_build_info("scraper")
    async with AsyncExitStack() as stack:
        # A page still extracting after the per-URL timeout has no caller left: stop it there.
        workers = settings.scraper_extract_workers or available_cpus()
        page_seconds = settings.scraper_fetch_timeout_seconds
        extractor = PoolExtractor(process_pool(workers, page_seconds), workers=workers,
                                  renew=lambda: process_pool(workers, page_seconds))
        stack.push_async_callback(extractor.aclose)
        transport = await stack.enter_async_context(http_transport(settings))
        scraper = build_scraper(settings, transport=transport, extractor=extractor, metrics=ScraperMetrics())
        server = build_server(settings, scraper)
        await stack.enter_async_context(OpsServer(settings.scraper_host, settings.scraper_metrics_port, serving.is_set))
        await extractor.warm()
        await server.start()
        serving.set()
        log.info("scraper ready", extra={"allow_private": settings.scraper_allow_private_networks,
                                         "allowed_ports": settings.scraper_allowed_ports, "extract_workers": workers})
        await stop.wait()
        serving.clear()
        await server.stop(settings.shutdown_grace_seconds)
        log.info("scraper drained; closing the HTTP client and the extraction pool")
