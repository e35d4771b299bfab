"""A cap on the size of chat request bodies, answered with 413 in the OpenAI error shape.

FastAPI buffers a JSON body whole before validating it, so without a cap one request could hold
any amount of memory. The cap is checked against Content-Length before anything is read, and
counted while a body without one (chunked) arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

from genai_common.errors import PayloadTooLarge

# Generous for text (and for images sent inline as data URLs); far below what would hurt.
MAX_BODY_BYTES = 16 * 1024 * 1024


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {limit} bytes", code="body_too_large")


def _counting(receive: Receive, limit: int) -> Receive:
    total = 0

    async def receive_with_limit() -> Message:
        nonlocal total
        message = await receive()
        if message["type"] == "http.request":
            total += len(message.get("body", b""))
            if total > limit:
                raise _too_large(limit)
        return message

    return receive_with_limit


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, refused (413) past `limit` bytes: by its Content-Length before a byte is
    read, else as it arrives."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    return await Request(request.scope, _counting(request.receive, limit)).body()


class BodyLimitedRoute(APIRoute):
    """An APIRoute whose request body may be at most `max_body_bytes` long."""

    max_body_bytes = MAX_BODY_BYTES

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        limit = self.max_body_bytes

        async def limited(request: Request) -> Response:
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise _too_large(limit)
            try:
                return await handler(Request(request.scope, _counting(request.receive, limit)))
            except HTTPException as exc:
                # FastAPI answers any error while it reads the body with a 400: give the cap's own.
                if isinstance(exc.__cause__, PayloadTooLarge):
                    raise exc.__cause__ from None
                raise

        return limited
