"""The security suite's gateway: the real app, `python -m gateway` under uvicorn in its own
process (so a blocked event loop shows as a slow /healthz, measured from this process), with
SQLite and blobs in the test's folder, RabbitMQ in the session's vhost, peers nowhere and no LLM.

`gateway(name, **env)` starts one and returns its base URL (`shared_gateway`: one with the
default settings for a whole module); `healthz_during(url, work)` runs `work`
while it times /healthz over and over, and returns the slowest answer.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

from tests.support.procs import Service, free_port, http_ok

KEYS = {"team-a": "sk-team-a-0123456789", "team-b": "sk-team-b-9876543210"}
API_KEYS = ",".join(f"{tenant}:{key}" for tenant, key in KEYS.items())


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


async def _bind_sinks(amqp_url: str) -> None:
    """Queues for what the gateway publishes (uploads, jobs), as ingest and imagegen would bind:
    an event nobody's queue takes is refused by the broker and the request fails with 503."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange("genai.events", aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue("test.security.sink", durable=True, arguments={"x-max-length": 1000})
        for key in ("document.uploaded", "image.job.requested", "text.job.requested"):
            await queue.bind(exchange, routing_key=key)


def _start(folder: Path, rabbit_url: str, started: list[Service], name: str, env: dict[str, str]) -> str:
    port = free_port()
    values = {
        "GATEWAY_PORT": str(port), "AMQP_URL": rabbit_url, "GATEWAY_API_KEYS": API_KEYS,
        "DATABASE_URL": f"sqlite+aiosqlite:///{folder}/{name}.db", "BLOB_STORE_URL": f"file://{folder}/blobs",
        "SCRAPER_ADDR": f"127.0.0.1:{free_port()}", "RETRIEVER_ADDR": f"127.0.0.1:{free_port()}",
        "GATEWAY_SCRAPE_DEADLINE_SECONDS": "2", "GATEWAY_RETRIEVE_DEADLINE_SECONDS": "2", "LOG_LEVEL": "WARNING",
        **env,
    }
    service = Service("gateway", values, folder / f"{name}.log")
    started.append(service)
    url = f"http://127.0.0.1:{port}"
    service.wait_until(lambda: http_ok(f"{url}/healthz"), timeout=60)
    return url


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory, rabbit_url: str) -> Iterator[str]:
    """One gateway with the default settings for a whole module (each start costs seconds)."""
    asyncio.run(_bind_sinks(rabbit_url))
    started: list[Service] = []
    yield _start(tmp_path_factory.mktemp("shared-gateway"), rabbit_url, started, "shared", {})
    for service in started:
        service.terminate(timeout=10)


@pytest.fixture
def gateway(tmp_path: Path, rabbit_url: str) -> Iterator[Callable[..., str]]:
    """`gateway(name, **env)`: a gateway of the test's own, with settings of its own."""
    asyncio.run(_bind_sinks(rabbit_url))
    started: list[Service] = []
    yield lambda name="gw", **env: _start(tmp_path, rabbit_url, started, name, env)
    for service in started:
        service.terminate(timeout=10)


async def healthz_during(url: str, work: Coroutine[Any, Any, object]) -> tuple[object, float]:
    """(what `work` returned, the slowest /healthz answer in seconds while it ran). The hostile
    client runs on an event loop of its own in another thread, so its sending never delays the
    probes: only the gateway's answers are timed."""
    task = asyncio.ensure_future(asyncio.to_thread(asyncio.run, work))
    slowest = 0.0
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await client.get("/healthz")  # a kept-alive connection: only the server's answer is timed
        probes = 0
        while not task.done() or probes < 3:
            started = time.perf_counter()
            assert (await client.get("/healthz")).status_code == 200
            slowest = max(slowest, time.perf_counter() - started)
            probes += 1
            await asyncio.sleep(0.02)
    return await task, slowest


async def raw_request(url: str, head: str, body_chunks: Callable[[], Iterator[bytes]],
                      read_after: int = 0) -> tuple[int, int]:
    """Send `head` then the chunks until the server answers (or they run out); returns (status,
    body bytes sent). Answers arriving while the body is still going out are what we look for."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    sent = 0
    try:
        writer.write(head.encode())
        status_line: asyncio.Task[bytes] = asyncio.ensure_future(reader.readline())
        for chunk in body_chunks():
            if status_line.done():
                break
            writer.write(chunk)
            sent += len(chunk)
            try:
                await writer.drain()
            except (ConnectionError, socket.error):
                break
            await asyncio.sleep(0)
        line = await asyncio.wait_for(status_line, timeout=30)
        return int(line.split()[1]), sent
    finally:
        writer.close()
