"""The gateway's public `/v1` API over HTTP: JSON calls, uploads and server-sent event streams."""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from genai_cli.errors import api_error, transport_error
from genai_cli.sse import SseEvent, parse_sse

DEFAULT_URL = "http://127.0.0.1:8000"
# Uploads and chats can take a while server-side; plain calls should not.
CALL_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
STREAM_TIMEOUT = httpx.Timeout(300.0, connect=5.0)
UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=5.0)
_MEDIA_TYPES = {".pdf": "application/pdf", ".txt": "text/plain", ".md": "text/markdown", ".markdown": "text/markdown"}


@dataclass(frozen=True)
class Connection:
    url: str
    api_key: str | None


class Gateway:
    """One `httpx.AsyncClient` for a command's lifetime: `async with Gateway(conn) as gw: ...`."""

    def __init__(self, connection: Connection) -> None:
        self._url = connection.url.rstrip("/")
        headers = {"Authorization": f"Bearer {connection.api_key}"} if connection.api_key else {}
        headers["User-Agent"] = "genai-cli"
        self._http = httpx.AsyncClient(base_url=self._url, headers=headers, timeout=CALL_TIMEOUT)

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of a successful answer; an `ApiError` for an error status."""
        response = await self._send(method, path, **kwargs)
        return response.json()

    async def content(self, path: str) -> bytes:
        return (await self._send("GET", path)).content

    async def upload(self, path: Path) -> dict[str, Any]:
        media_type = (_MEDIA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
                      or "application/octet-stream")
        with path.open("rb") as handle:
            return await self.call("POST", "/v1/documents", files={"file": (path.name, handle, media_type)},
                                   timeout=UPLOAD_TIMEOUT)

    @asynccontextmanager
    async def events(self, method: str, path: str, **kwargs: Any) -> AsyncIterator[AsyncIterator[SseEvent]]:
        """A server-sent event stream; the error status is raised before the first event."""
        try:
            async with self._http.stream(method, path, timeout=STREAM_TIMEOUT, **kwargs) as response:
                if response.is_error:
                    raise api_error(response.status_code, await response.aread())
                yield parse_sse(response.aiter_lines())
        except httpx.HTTPError as exc:
            raise transport_error(self._url, exc) from None

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise transport_error(self._url, exc) from None
        if response.is_error:
            raise api_error(response.status_code, response.content)
        return response
