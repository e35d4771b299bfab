"""A lean closed-loop HTTP/1.1 load generator for the gateway benchmarks.

Each of `connections` keep-alive connections sends one pre-built request, waits for the whole
answer, and sends the next: a bare asyncio protocol with the httptools parser (a few tens of
microseconds per request), so it does not limit what it measures. Per request it records the
time to the first byte of the body (a streamed answer's first event: TTFT) and to its end.

Run it in a process of its own (the bench's), apart from the servers it measures; `uvloop.run`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httptools
import orjson


@dataclass(frozen=True)
class Sample:
    first_byte: float  # seconds from sending to the first body byte (TTFT for a stream)
    total: float       # seconds from sending to the end of the answer


def post(port: int, path: str, body: dict[str, object], headers: dict[str, str] | None = None) -> bytes:
    """The bytes of one keep-alive POST of `body` as JSON."""
    payload = orjson.dumps(body)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json",
             f"Content-Length: {len(payload)}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class Connection(asyncio.Protocol):
    """One keep-alive connection: `await conn.send(request)` one request at a time."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._done: asyncio.Future[int] | None = None
        self._first = 0.0
        self._lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc or ConnectionError("connection closed")
        if self._done is not None and not self._done.done():
            self._done.set_exception(self._lost)

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        if not self._first:
            self._first = time.perf_counter()

    def on_message_complete(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(self._parser.get_status_code())

    async def send(self, request: bytes) -> Sample:
        if self._lost is not None or self._transport is None:
            raise ConnectionError("connection closed")
        self._done = asyncio.get_running_loop().create_future()
        self._first = 0.0
        started = time.perf_counter()
        self._transport.write(request)
        status = await self._done
        ended = time.perf_counter()
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        return Sample((self._first or ended) - started, ended - started)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def connect(port: int) -> Connection:
    _, protocol = await asyncio.get_running_loop().create_connection(Connection, "127.0.0.1", port)
    return protocol


async def closed_loop(port: int, request: bytes, *, connections: int, requests: int = 0,
                      seconds: float = 0.0) -> tuple[list[Sample], float]:
    """Send `requests` requests (or as many as fit in `seconds`) over `connections` connections,
    each one request at a time. Returns the samples and the wall time they took."""
    conns = [await connect(port) for _ in range(connections)]
    samples: list[Sample] = []
    remaining = requests
    started = time.perf_counter()
    until = started + seconds

    async def worker(conn: Connection) -> None:
        nonlocal remaining
        while (remaining > 0) if requests else (time.perf_counter() < until):
            remaining -= 1
            samples.append(await conn.send(request))

    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for conn in conns:
            conn.close()
    return samples, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]
