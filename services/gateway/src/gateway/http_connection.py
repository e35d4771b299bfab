"""One keep-alive HTTP/1.1 connection to the LLM server, and the response being read on it.

A bare asyncio protocol with the httptools parser (the one uvicorn uses): writing a request is
one `transport.write` of pre-built bytes; the response's head, body pieces and end arrive as
parser callbacks. A waiting reader is woken by a future, bounded by a timer (no task, no
`asyncio.timeout` per wait). `gateway.http_pool` owns the connections.

Errors: `HttpTimeout` (no byte within the deadline), `HttpConnectionError` (could not connect,
or the connection broke or sent something that is not HTTP).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

import httptools

# A streamed body buffered beyond this (the reader is slower than the server) pauses reading.
HIGH_WATER_BYTES = 1 << 20


class HttpError(Exception):
    """A request to the upstream failed before a complete response."""


class HttpTimeout(HttpError):
    """No answer (or no next piece of the body) within the deadline."""


class HttpConnectionError(HttpError):
    """Could not connect, or the connection broke or did not speak HTTP."""


class Response:
    """Status, headers (lower-case names) and body of one response; `release()` ends it."""

    def __init__(self, connection: Connection, deadline: float) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._connection = connection
        self._deadline = deadline
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._has_head = False
        self.complete = False
        self._error: HttpError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._released = False
        self.received_any = False  # a byte of the response arrived (a failure after it is not retried)

    async def read(self) -> bytes:
        """The whole body."""
        while not self.complete:
            self._connection.resume_reading()  # a body read whole is never held back
            await self._wait()
        body = b"".join(self._body)
        self._body.clear()
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in the pieces it arrives in."""
        while True:
            while self._body:
                piece = self._body.popleft()
                self._buffered -= len(piece)
                yield piece
            if self.complete:
                return
            self._connection.resume_reading()
            await self._wait()

    def release(self) -> None:
        """End the response: its connection goes back to the pool when the body was read to the
        end, and is closed otherwise (a cut stream, an error, a cancelled call). Only the first call counts."""
        if not self._released:
            self._released = True
            self._connection.finish(reusable=self.complete and self._error is None)

    async def head(self) -> None:
        while not self._has_head:
            await self._wait()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(self._deadline, self._time_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _time_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self._error = HttpTimeout(f"no answer within {self._deadline:g}s")
            waiter.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # Called by the connection's parser callbacks.
    def on_head(self, status: int) -> None:
        self.status, self._has_head = status, True
        self._wake()

    def on_body(self, piece: bytes) -> None:
        self._body.append(piece)
        self._buffered += len(piece)
        if self._buffered > HIGH_WATER_BYTES:
            self._connection.pause_reading()
        self._wake()

    def on_complete(self) -> None:
        self.complete = True
        self._wake()

    def on_error(self, error: HttpError) -> None:
        if not self.complete:
            self._error = error
            self._wake()


class Connection(asyncio.Protocol):
    """A connection the pool hands out for one request at a time."""

    def __init__(self, created: float, on_finished: Callable[[Connection, bool], None]) -> None:
        self.created = created
        self.idle_since = created
        self.requests = 0
        self.closed = False
        self._on_finished = on_finished
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._response: Response | None = None
        self._keep_alive = True
        self._paused = False
        self._eof_delimited = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self._response
        if response is not None and response.status and self._eof_delimited:
            response.on_complete()  # a body without length or chunks ends with the connection
            self._keep_alive = False
        elif response is not None:
            response.on_error(HttpConnectionError(f"the connection closed{f': {exc}' if exc else ''}"))

    def data_received(self, data: bytes) -> None:
        if self._response is None:  # nothing asked: a stray byte means the connection is unusable
            self.close()
            return
        self._response.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._response.on_error(HttpConnectionError(f"the server's answer is not valid HTTP: {exc}"))
            self.close()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._response is not None
        self._response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self._response is not None
        headers = self._response.headers
        self._eof_delimited = "content-length" not in headers and "chunked" not in headers.get(
            "transfer-encoding", "").lower()
        self._response.on_head(self._parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        assert self._response is not None
        self._response.on_body(body)

    def on_message_complete(self) -> None:
        assert self._response is not None
        self._keep_alive = self._parser.should_keep_alive()
        self._response.on_complete()

    # used by the pool and the response
    def send(self, request: bytes, deadline: float) -> Response:
        assert self._transport is not None and self._response is None
        self.requests += 1
        self._response = Response(self, deadline)
        self._transport.write(request)
        return self._response

    def finish(self, reusable: bool) -> None:
        if self._response is None:
            return
        self._response = None
        keep = reusable and self._keep_alive and not self.closed
        if not keep:
            self.close()
        self._on_finished(self, keep)

    def pause_reading(self) -> None:
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and self._transport is not None and not self.closed:
            self._paused = False
            self._transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()
