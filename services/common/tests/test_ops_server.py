"""OpsServer: the probe and metrics endpoint of the non-HTTP services, over a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
from prometheus_client import CollectorRegistry, Counter

from genai_common.ops_server import OpsServer


async def test_probes_follow_readiness_and_metrics_are_exposed() -> None:
    registry = CollectorRegistry()
    Counter("demo_things", "Things done", registry=registry).inc(3)
    ready = False
    async with OpsServer("127.0.0.1", 0, lambda: ready, registry) as ops, httpx.AsyncClient() as http:
        base = f"http://127.0.0.1:{ops.port}"
        assert (await http.get(f"{base}/healthz")).status_code == 200
        assert (await http.get(f"{base}/readyz")).status_code == 503
        ready = True
        assert (await http.get(f"{base}/readyz")).status_code == 200
        assert "demo_things_total 3.0" in (await http.get(f"{base}/metrics")).text
        assert (await http.get(f"{base}/nothing")).status_code == 404


async def test_a_client_trickling_header_lines_is_cut_off_at_the_deadline() -> None:
    """The 0.5 s bound holds for the whole request head: a line every 0.1 s never resets it."""
    async with OpsServer("127.0.0.1", 0, lambda: True, CollectorRegistry(), read_timeout=0.5) as ops:
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", ops.port)
        writer.write(b"GET /readyz HTTP/1.1\r\n")

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                while True:  # each line arrives quickly; the head never ends
                    await asyncio.sleep(0.1)
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()

        trickling = asyncio.create_task(trickle())
        try:
            async with asyncio.timeout(5):
                try:
                    answer = await reader.read()  # until the server closes the connection
                except ConnectionResetError:  # closed while a line was on its way
                    answer = b""
        finally:
            trickling.cancel()
            writer.close()
        elapsed = time.monotonic() - started
    assert answer == b""  # cut off without a response
    assert 0.5 <= elapsed < 2.0, elapsed


async def test_an_overlong_header_line_closes_the_connection_and_the_server_keeps_serving() -> None:
    async with OpsServer("127.0.0.1", 0, lambda: True, CollectorRegistry()) as ops, httpx.AsyncClient() as http:
        reader, writer = await asyncio.open_connection("127.0.0.1", ops.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
        async with asyncio.timeout(10):
            try:
                assert await reader.read() == b""  # closed without an answer
            except ConnectionResetError:  # closed while the rest of the line was still arriving
                pass
        writer.close()
        assert (await http.get(f"http://127.0.0.1:{ops.port}/healthz")).status_code == 200
