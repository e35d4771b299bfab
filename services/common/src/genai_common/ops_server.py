"""The small HTTP endpoint of the services that have no web framework: /metrics, /healthz, /readyz."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


class OpsServer:
    """/metrics, /healthz (process alive) and /readyz (`ready()` is true) on one port.

    A tiny asyncio HTTP/1.0 responder: the workers have no web framework and need none.
    """

    def __init__(self, host: str, port: int, ready: Callable[[], bool], registry: CollectorRegistry = REGISTRY,
                 *, read_timeout: float = 5.0) -> None:
        self._host, self._port = host, port
        self._ready = ready
        self._registry = registry
        self._read_timeout = read_timeout  # for the whole request head, not per line
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def __aenter__(self) -> OpsServer:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        log.info("ops endpoint listening", extra={"port": self.port})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self._read_timeout):
                request_line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            parts = request_line.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else "/"
            status, content_type, body = self._respond(path)
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n")
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):  # slow, gone, or a line over the reader's limit
            pass
        finally:
            writer.close()

    def _respond(self, path: str) -> tuple[str, str, bytes]:
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path == "/healthz":
            return "200 OK", "application/json", b'{"status":"ok"}'
        if path == "/readyz":
            if self._ready():
                return "200 OK", "application/json", b'{"status":"ready"}'
            return "503 Service Unavailable", "application/json", b'{"status":"not ready"}'
        return "404 Not Found", "application/json", b'{"error":"not found"}'
