"""`python -m scraper` as a real process: serves, exposes metrics, drains on SIGTERM, exits 0."""

from __future__ import annotations

import asyncio
import signal

import grpc
import httpx
from scraper_fakes import Reply, SeenRequest, article

from genai.scraper.v1 import scraper_pb2, scraper_pb2_grpc
from tests.support.eventually import eventually
from tests.support.procs import Service, free_port, grpc_serving

PAGE = article("Night trains return", [
    "Night trains between the two capitals return this winter after a pause of more than ten years.",
    "The operator says sleeper cabins sold out within hours of the timetable being published.",
])


async def test_the_service_scrapes_reports_metrics_and_drains_on_sigterm(site, tmp_path):
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow(_: SeenRequest) -> Reply:
        arrived.set()
        await release.wait()
        return Reply(body=PAGE)

    site.routes["/fast"] = Reply(body=PAGE)
    site.routes["/slow"] = slow
    port, metrics_port = free_port(), free_port()
    env = {"SCRAPER_PORT": str(port), "SCRAPER_METRICS_PORT": str(metrics_port),
           "SCRAPER_ALLOW_PRIVATE_NETWORKS": "true", "SCRAPER_ALLOWED_PORTS": f"80,443,{site.port}",
           "SHUTDOWN_GRACE_SECONDS": "15"}
    service = Service("scraper", env, tmp_path / "scraper.log")
    address = f"127.0.0.1:{port}"
    try:
        await asyncio.to_thread(service.wait_until, lambda: grpc_serving(address), 60)
        async with grpc.aio.insecure_channel(address) as channel, httpx.AsyncClient() as http:
            stub = scraper_pb2_grpc.ScraperServiceStub(channel)
            first = await stub.Scrape(scraper_pb2.ScrapeRequest(urls=[site.url("/fast")]), timeout=20)
            assert first.pages[0].outcome == scraper_pb2.OUTCOME_OK, first.pages[0].reason
            assert "sleeper cabins" in first.pages[0].text

            metrics = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            assert 'scraper_fetches_total{outcome="ok"} 1.0' in metrics
            assert (await http.get(f"http://127.0.0.1:{metrics_port}/readyz")).status_code == 200

            slow_request = scraper_pb2.ScrapeRequest(urls=[site.url("/slow")])
            in_flight = asyncio.ensure_future(stub.Scrape(slow_request, timeout=30))
            await asyncio.wait_for(arrived.wait(), 20)
            service.process.send_signal(signal.SIGTERM)
            # Health flips, new work is refused.
            await eventually(lambda: asyncio.to_thread(grpc_serving, address), lambda serving: not serving,
                             within=20, every=0.1, what="health NOT_SERVING after SIGTERM")

            release.set()
            drained = await in_flight  # the request already in flight still completes
            assert drained.pages[0].outcome == scraper_pb2.OUTCOME_OK
        assert await asyncio.to_thread(service.process.wait, 30) == 0, service.tail()
    finally:
        service.terminate()
