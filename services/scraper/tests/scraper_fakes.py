"""Fakes for the scraper's tests: a local web site, a DNS, and an "internet" transport.

Nothing here sends traffic anywhere but 127.0.0.1: `FakeInternet` answers inside the process
for the public addresses a `FakeResolver` hands out.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx

from scraper.addresses import IPAddress
from scraper.guard import ResolveFailed


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/html; charset=utf-8"})
    body: bytes = b""
    chunks: Sequence[bytes] | None = None  # sent with Transfer-Encoding: chunked, no Content-Length


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]


Handler = Callable[[SeenRequest], Awaitable[Reply]]


class FakeSite:
    """An HTTP/1.1 server on 127.0.0.1 that counts connections and requests in flight."""

    def __init__(self) -> None:
        self.routes: dict[str, Reply | Handler] = {}
        self.connections = 0
        self.requests: list[SeenRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def __aenter__(self) -> FakeSite:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while await self._one_exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _one_exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        request = SeenRequest(path, headers)
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            route = self.routes.get(path.split("?", 1)[0], Reply(404, body=b"not found"))
            reply = route if isinstance(route, Reply) else await route(request)
        finally:
            self.in_flight -= 1
        await _write(writer, reply)
        return True


async def _write(writer: asyncio.StreamWriter, reply: Reply) -> None:
    head = [f"HTTP/1.1 {reply.status} X"] + [f"{k}: {v}" for k, v in reply.headers.items()]
    if reply.chunks is None:
        head.append(f"Content-Length: {len(reply.body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body)
    else:
        head.append("Transfer-Encoding: chunked")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        for chunk in reply.chunks:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
    await writer.drain()


class FakeResolver:
    """Answers from a table; a list of answers is handed out one per lookup (then the last)."""

    def __init__(self, table: dict[str, list[str] | list[list[str]]] | None = None) -> None:
        self.table = dict(table or {})
        self.lookups: list[str] = []

    async def resolve(self, host: str) -> list[IPAddress]:
        self.lookups.append(host)
        answers = self.table.get(host)
        if not answers:
            raise ResolveFailed(f"{host} does not resolve")
        if isinstance(answers[0], list):
            count = self.lookups.count(host)
            answers = answers[min(count, len(answers)) - 1]  # type: ignore[assignment]
        return [ipaddress.ip_address(a) for a in answers]  # type: ignore[arg-type]


@dataclass
class Connection:
    """What the client asked the transport to connect to."""

    address: str
    port: int
    host_header: str
    sni: str | None
    path: str


class _Body(httpx.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._data


class FakeInternet(httpx.AsyncBaseTransport):
    """An httpx transport standing in for the public internet: records every connection it is
    asked for and answers from `pages` keyed by (address, path); nothing leaves the process."""

    def __init__(self, pages: dict[tuple[str, str], Reply] | None = None) -> None:
        self.pages = dict(pages or {})
        self.connections: list[Connection] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        self.connections.append(Connection(
            url.host, url.port or (443 if url.scheme == "https" else 80), request.headers.get("host", ""),
            request.extensions.get("sni_hostname"), url.raw_path.decode(),
        ))
        reply = self.pages.get((url.host, url.raw_path.decode()), ARTICLE_REPLY)
        return httpx.Response(reply.status, headers=reply.headers, stream=_Body(reply.body))

    @property
    def addresses(self) -> list[str]:
        return [c.address for c in self.connections]


def article(title: str, paragraphs: Sequence[str]) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html><head><title>{title}</title></head><body>"
        f"<nav><a href='/'>Home</a> | <a href='/about'>About us</a> | <a href='/login'>Log in</a></nav>"
        f"<article><h1>{title}</h1>{body}</article>"
        f"<footer>Copyright 2026 Example Media. All rights reserved. Cookie settings.</footer></body></html>"
    ).encode()


ARTICLE_REPLY = Reply(body=article("Fake public page", [
    "This page stands in for a public web page in the scraper's tests; it is served in-process.",
    "It has enough running text for the extractor to treat it as the main content of the page.",
]))

