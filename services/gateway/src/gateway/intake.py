"""What every /v1 request goes through before any route sees it, in this order:

1. the API key, from the headers only (401 before a byte of the body is read): the caller's
   `Principal` (tenant and key id) goes into the scope for the routes (`gateway.auth.Caller`);
2. admission (`gateway.limits.admission`): process-wide caps (503) and per-key limits (429);
3. the body cap of the route (413): by Content-Length before anything is read, else counted as
   the body arrives. A JSON body is read here, whole but bounded, and handed on; an upload is
   streamed on, counted, and must arrive whole within the upload time limit (408).

Refusals are answered here in the API's error shape (`gateway.errors`); the chat lane and the
declared routes therefore share one auth and cap path.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import SCOPE_KEY, ApiKeyAuth
from gateway.errors import service_error_response
from gateway.limits.admission import Admission, Kind
from genai_common.errors import PayloadTooLarge, RequestTimeout, ServiceError

API_PREFIX = "/v1/"
CHAT_PATH = "/v1/chat/completions"
UPLOAD_PATH = "/v1/documents"
STREAM_SUFFIX = "/events"


@dataclass(frozen=True)
class BodyCaps:
    json_bytes: int
    chat_bytes: int
    upload_bytes: int
    upload_seconds: float


def classify(method: str, path: str) -> Kind:
    if method == "POST" and path == CHAT_PATH:
        return Kind.CHAT
    if method == "POST" and path.rstrip("/") == UPLOAD_PATH:
        return Kind.UPLOAD
    if method == "GET" and path.startswith("/v1/jobs/") and path.endswith(STREAM_SUFFIX):
        return Kind.STREAM
    return Kind.API


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {limit} bytes", code="body_too_large")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class Intake:
    """Pure-ASGI middleware in front of the /v1 routes (see the module doc)."""

    def __init__(self, app: ASGIApp, auth: ApiKeyAuth, admission: Admission, caps: BodyCaps) -> None:
        self.app = app
        self._auth, self._admission, self._caps = auth, admission, caps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        kind = classify(scope["method"], scope["path"])
        try:
            principal = self._auth.verify_header(_header(scope, b"authorization"))
            scope[SCOPE_KEY] = principal
            held = await self._admission.enter(principal.key_id, kind)
        except ServiceError as exc:
            await service_error_response(exc)(scope, receive, send)
            return
        refusal: ServiceError | None = None
        try:
            receive = await self._bounded(scope, receive, kind)
            await self.app(scope, receive, send)
        except ServiceError as exc:
            # A refusal before the app answered. The app maps the errors of its routes itself, so none
            # escapes it once it has answered (were one to, answering it here would fail and end the
            # request as an unhandled error): no per-message wrapper of `send` is needed to know.
            refusal = exc
        finally:
            await self._admission.leave(held)
        if refusal is not None:
            await service_error_response(refusal)(scope, receive, send)

    def _cap(self, kind: Kind) -> int:
        if kind is Kind.UPLOAD:
            return self._caps.upload_bytes
        return self._caps.chat_bytes if kind is Kind.CHAT else self._caps.json_bytes

    async def _bounded(self, scope: Scope, receive: Receive, kind: Kind) -> Receive:
        cap = self._cap(kind)
        length = _header(scope, b"content-length") or ""
        if length.isdigit() and int(length) > cap:
            raise _too_large(cap)
        if kind is Kind.UPLOAD:
            return _streamed(receive, cap, self._caps.upload_seconds)
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS") and not length:
            return receive  # no body: nothing to read (an event stream keeps `receive` for disconnects)
        return BodyReplay(await _read_whole(receive, cap), receive)


async def _read_whole(receive: Receive, cap: int) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return bytes(body)  # disconnected: the route sees what arrived, as it would have
        body += message.get("body", b"")
        if len(body) > cap:
            raise _too_large(cap)
        if not message.get("more_body", False):
            return bytes(body)


class BodyReplay:
    """The `receive` of a route behind the intake: the body it read, then the client's messages.

    A route that knows it (the chat lane) takes `body` and `receive` straight off it instead."""

    __slots__ = ("body", "receive", "_sent")

    def __init__(self, body: bytes, receive: Receive) -> None:
        self.body, self.receive, self._sent = body, receive, False

    async def __call__(self) -> Message:
        if not self._sent:
            self._sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        return await self.receive()  # after the body: the disconnect, whenever it comes

    def take(self) -> tuple[bytes, Receive] | None:
        """The body and the client's own `receive`, unless the body was replayed already."""
        if self._sent:
            return None
        self._sent = True
        return self.body, self.receive


def _streamed(receive: Receive, cap: int, seconds: float) -> Receive:
    """The upload's messages as they come, refused past `cap` bytes or `seconds` in all."""
    deadline = time.monotonic() + seconds
    total = 0

    async def counted() -> Message:
        nonlocal total
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                message = await receive()
        except TimeoutError:
            raise RequestTimeout(f"the upload did not arrive within {seconds:g} s",
                                 code="upload_timeout") from None
        if message["type"] == "http.request":
            total += len(message.get("body", b""))
            if total > cap:
                raise _too_large(cap)
        return message

    return counted
