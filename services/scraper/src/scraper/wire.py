"""The scraper's HTTP/1.1 transport: one connection per request, to the exact address in the
request's URL, closed when the response ends (no pool, so no connection is ever handed to
another host's request).

An httpx transport (the fetcher and the tests speak httpx's Request and Response), but a bare
asyncio protocol with the httptools parser underneath instead of httpcore: httpcore's pool
bookkeeping, anyio's connect machinery and its per-read cancel scopes were most of the scraper's
CPU per URL. What the fetcher relies on is kept: the `timeout` extension (connect, read, pool),
`sni_hostname` for TLS (verified against that name with httpx's default context), at most
`max_connections` open at once, the body streamed raw (still content-encoded) so the caller can
bound it, and failures as httpx's exceptions (ConnectError, ConnectTimeout, ReadTimeout,
PoolTimeout, RemoteProtocolError, ReadError).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator

import httptools
import httpx

# Body bytes buffered ahead of the reader before reading from the socket pauses.
HIGH_WATER_BYTES = 256 * 1024
DEFAULT_PORTS = {b"http": 80, b"https": 443}


class _Wire(asyncio.Protocol):
    """One connection and the one response read on it."""

    def __init__(self, read_timeout: float | None) -> None:
        self._read_timeout = read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.status = 0
        self._has_head = False
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._eof_delimited = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"the server's answer is not valid HTTP: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close the transport: the server sends nothing more

    def connection_lost(self, exc: Exception | None) -> None:
        if self._complete or self._error is not None:
            return
        if self._has_head and self._eof_delimited:
            self._complete = True  # a body with neither length nor chunks ends with the connection
            self._wake()
        elif not self._has_head:
            self._fail(httpx.RemoteProtocolError("the server disconnected without sending a response"))
        else:
            self._fail(httpx.RemoteProtocolError("the server closed the connection before the end of the body"))

    # httptools callbacks
    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        names = {name.lower(): value for name, value in self.headers}
        self._eof_delimited = b"content-length" not in names and b"chunked" not in names.get(
            b"transfer-encoding", b"").lower()
        self._has_head = True
        self._wake()

    def on_body(self, piece: bytes) -> None:
        self._body.append(piece)
        self._buffered += len(piece)
        if self._buffered > HIGH_WATER_BYTES and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self._complete = True
        self._wake()

    # used by the transport and the body stream
    def send(self, request: bytes) -> None:
        assert self._transport is not None
        self._transport.write(request)

    async def head(self) -> None:
        while not self._has_head:
            await self._wait()

    async def pieces(self) -> AsyncIterator[bytes]:
        while True:
            while self._body:
                piece = self._body.popleft()
                self._buffered -= len(piece)
                yield piece
            if self._complete:
                return
            if self._paused and self._transport is not None:
                self._paused = False
                self._transport.resume_reading()
            await self._wait()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _fail(self, error: Exception) -> None:
        if self._error is None and not self._complete:
            self._error = error
        self.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if self._read_timeout is None else loop.call_later(self._read_timeout, self._time_out, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _time_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self._fail(httpx.ReadTimeout(f"no answer within {self._read_timeout:g}s"))


class _Body(httpx.AsyncByteStream):
    """The response body as it arrives; closing it closes the connection and frees its place."""

    def __init__(self, wire: _Wire, release: asyncio.Semaphore) -> None:
        self._wire = wire
        self._release: asyncio.Semaphore | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for piece in self._wire.pieces():
            yield piece

    async def aclose(self) -> None:
        self._wire.close()
        if self._release is not None:
            self._release.release()
            self._release = None


class LeanTransport(httpx.AsyncBaseTransport):
    """See the module doc."""

    def __init__(self, *, max_connections: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._ssl_context = ssl_context

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()  # httpx's default: verified, certifi's CAs
        return self._ssl_context

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        scheme = url.raw_scheme
        if scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}")
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection free in time") from None
        try:
            wire = await self._connect(request, scheme, timeouts)
        except BaseException:
            self._slots.release()
            raise
        body = _Body(wire, self._slots)
        try:
            wire.send(_request_bytes(request))
            await wire.head()
        except BaseException:
            await body.aclose()
            raise
        return httpx.Response(wire.status, headers=wire.headers, stream=body, request=request,
                              extensions={"http_version": b"HTTP/1.1", "reason_phrase": wire.reason.strip()})

    async def _connect(self, request: httpx.Request, scheme: bytes, timeouts: dict[str, float | None]) -> _Wire:
        url = request.url
        host = url.host
        port = url.port or DEFAULT_PORTS[scheme]
        tls = None
        server_hostname = None
        if scheme == b"https":
            tls = self._tls()
            server_hostname = request.extensions.get("sni_hostname") or host
        loop = asyncio.get_running_loop()
        read_timeout = timeouts.get("read")
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                _, wire = await loop.create_connection(lambda: _Wire(read_timeout), host, port, ssl=tls,
                                                       server_hostname=server_hostname)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"could not connect to {host} in time") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return wire


def _request_bytes(request: httpx.Request) -> bytes:
    """The request's head, its headers as given (the fetcher names the Host); GET has no body."""
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), request.url.raw_path)]
    lines.extend(b"%s: %s\r\n" % (name, value) for name, value in request.headers.raw)
    lines.append(b"\r\n")
    return b"".join(lines)
