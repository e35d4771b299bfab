"""Keep-alive HTTP/1.1 connections to one origin (the LLM server), for the gateway's LLM adapter.

Why not httpx (under the OpenAI SDK): its pool scans every pooled connection on every request
(expiry and readability checks) and the SDK builds and deep-copies request objects per call;
under 64 chats in flight that was most of the gateway's CPU (`bench/gateway_profile.py`). Here a
request takes the most recently used idle connection, or opens one, and gives it back when its
response ends: constant work, whatever the pool's size.

- At most `max_connections` connections (sized from LLM_MAX_CONCURRENCY); a request that finds
  the limit reached waits for a connection to come back.
- A connection lives at most `max_age` seconds (LLM_CONNECTION_MAX_AGE_SECONDS): an older one
  is closed when its response ends, and the next request opens a fresh one, resolving the host
  name again and taking the next of the addresses it resolves to. Behind a Service, new vLLM
  replicas get their share of traffic instead of every request staying on the replicas the
  first connections reached.
- A connection idle longer than `IDLE_SECONDS` is not reused (servers close idle keep-alive
  connections; uvicorn after 5 s), and a request whose reused connection turns out closed before
  any byte of an answer is sent once more on a fresh one.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import certifi

from gateway.http_connection import Connection, HttpConnectionError, HttpError, HttpTimeout, Response

IDLE_SECONDS = 4.0

Resolver = Callable[[str, int], Awaitable[list[tuple[str, int]]]]


async def resolve(host: str, port: int) -> list[tuple[str, int]]:
    """The addresses a host name stands for, as the system resolver gives them."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys((str(info[4][0]), int(info[4][1])) for info in infos))


class HttpPool:
    def __init__(self, base_url: str, *, max_connections: int, max_age: float, connect_deadline: float,
                 resolver: Resolver = resolve, clock: Callable[[], float] = time.monotonic,
                 tls: ssl.SSLContext | None = None) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.base_path = url.path.rstrip("/")
        self.host_header = url.netloc.rpartition("@")[2]
        # https: by default the CA bundle the OpenAI SDK (httpx) trusted, certifi's.
        self._ssl = (tls or ssl.create_default_context(cafile=certifi.where())) if url.scheme == "https" else None
        self._limit = max(1, max_connections)
        self._max_age = max_age
        self._connect_deadline = connect_deadline
        self._resolver = resolver
        self._clock = clock
        self._idle: list[Connection] = []
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._open = 0
        self._closed = False
        self._next_address = 0
        self.connections_opened = 0

    @property
    def waiting(self) -> int:
        """Requests waiting for a connection (the limit is reached)."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def request(self, request: bytes, deadline: float) -> Response:
        """Send `request` (its head and body, as bytes); returns once the response head arrived.
        The caller must `release()` the response, whatever happens after."""
        for attempt in (1, 2):
            # A retry goes on a fresh connection: the idle ones are likely closed as well.
            connection = await self._acquire(deadline, fresh=attempt == 2)
            reused = connection.requests > 0
            response = connection.send(request, deadline)
            try:
                await response.head()
                return response
            except HttpConnectionError:
                response.release()
                if attempt == 2 or not reused or response.received_any:
                    raise
            except BaseException:
                response.release()
                raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close the idle connections now; those in use close when their responses end."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()
        for waiter in self._waiters:
            waiter.cancel()

    async def _acquire(self, deadline: float, fresh: bool = False) -> Connection:
        now = self._clock()
        while self._idle:
            connection = self._idle.pop()
            if not fresh and self._reusable(connection, now):
                return connection
            self._drop(connection)
        if self._open >= self._limit:
            try:
                async with asyncio.timeout(deadline):
                    handed = await self._wait_for_connection()
            except TimeoutError as exc:
                raise HttpTimeout(f"no connection to {self.host} free within {deadline:g}s") from exc
            if handed is not None:
                return handed
        self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._wake_one(None)
            raise

    async def _wait_for_connection(self) -> Connection | None:
        """A connection another request gave back, or None: one closed, open a new one."""
        waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over just as the caller gave up
                self._pass_on(waiter.result())
            raise

    def _pass_on(self, connection: Connection | None) -> None:
        if connection is None:
            self._wake_one(None)
        else:
            self._finished(connection, reusable=True)

    async def _connect(self) -> Connection:
        try:
            async with asyncio.timeout(self._connect_deadline):
                addresses = await self._resolver(self.host, self.port)
                return await self._open_one(addresses)
        except TimeoutError as exc:
            raise HttpTimeout(f"could not connect to {self.host} within {self._connect_deadline:g}s") from exc
        except OSError as exc:
            raise HttpConnectionError(f"could not connect to {self.host}: {exc}") from exc

    async def _open_one(self, addresses: list[tuple[str, int]]) -> Connection:
        """Connect to the next address in turn (then the others, should it refuse)."""
        if not addresses:
            raise OSError(f"{self.host} resolves to no address")
        start = self._next_address % len(addresses)
        self._next_address += 1
        loop = asyncio.get_running_loop()
        error: OSError | None = None
        for host, port in addresses[start:] + addresses[:start]:
            try:
                _, connection = await loop.create_connection(
                    lambda: Connection(self._clock(), self._finished), host, port, ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None)
                self.connections_opened += 1
                return connection
            except OSError as exc:
                error = exc
        assert error is not None
        raise error

    def _finished(self, connection: Connection, reusable: bool) -> None:
        """A response ended: hand the connection to a waiting request, or keep it idle, or drop it."""
        now = self._clock()
        if not reusable or self._closed or connection.closed or self._too_old(connection, now):
            self._drop(connection)
            return
        connection.idle_since = now
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def _drop(self, connection: Connection) -> None:
        connection.close()
        self._open -= 1
        self._wake_one(None)

    def _wake_one(self, value: Connection | None) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(value)
                return

    def _reusable(self, connection: Connection, now: float) -> bool:
        return not connection.closed and now - connection.idle_since < IDLE_SECONDS and not self._too_old(
            connection, now)

    def _too_old(self, connection: Connection, now: float) -> bool:
        return now - connection.created >= self._max_age


__all__ = ["HttpConnectionError", "HttpError", "HttpPool", "HttpTimeout", "Response"]
