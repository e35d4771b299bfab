"""HTTP edge of the chat feature: OpenAI wire ↔ ChatService, errors in the OpenAI shape."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.chat.body_limit import BodyLimitedRoute
from gateway.chat.context import ContextRequest
from gateway.chat.limiter import Saturated
from gateway.chat.llm import UpstreamError
from gateway.chat.metrics import CHAT_REQUESTS
from gateway.chat.models import ChatCompletionRequest, ModelCard, ModelList
from gateway.chat.prompt import last_user_text
from gateway.chat.service import ChatRequest, ChatService, ChatStream
from gateway.errors import APIError, error_body

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["chat"], route_class=BodyLimitedRoute)
T = TypeVar("T")

_UPSTREAM_TYPES = {400: ("invalid_request_error", "llm_rejected"), 429: ("rate_limit_error", "llm_rate_limited"),
                   502: ("api_error", "llm_failed"), 503: ("service_unavailable", "llm_unavailable"),
                   504: ("timeout_error", "llm_timeout")}


async def _service(request: Request) -> ChatService:
    return request.app.state.chat


Service = Annotated[ChatService, Depends(_service)]


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


def _api_error(exc: UpstreamError | Saturated) -> APIError:
    if isinstance(exc, Saturated):
        return APIError(429, str(exc), type="rate_limit_error", code="gateway_overloaded",
                        headers={"Retry-After": str(exc.retry_after)})
    type_, code = _UPSTREAM_TYPES.get(exc.status, ("api_error", "llm_failed"))
    headers = {"Retry-After": exc.retry_after} if exc.retry_after else None
    return APIError(exc.status, exc.message, type=type_, code=code, headers=headers)


def _to_domain(body: ChatCompletionRequest) -> ChatRequest:
    if body.n is not None and body.n > 1:
        raise APIError(400, "only n=1 is supported", param="n", code="unsupported_value")
    if not body.messages:
        raise APIError(400, "messages must not be empty", param="messages")
    messages = body.llm_messages()
    question = last_user_text(messages)
    if question is None:
        raise APIError(400, "messages must contain a user message", param="messages")
    options = body.genai
    context = ContextRequest(question=question, scrape=options.scrape, rag=options.rag, top_k=options.top_k,
                             score_threshold=options.score_threshold)
    stream_options = body.stream_options.model_dump(exclude_none=True) if body.stream_options else None
    return ChatRequest(messages=messages, context=context, params=body.llm_params(), stream_options=stream_options)


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Run `work`, cancelling it (and its upstream calls) if the client goes away first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request.receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait((task,))
    if task.cancelled():
        raise ClientGone()
    return task.result()


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


class _SSEResponse(StreamingResponse):
    """Streams a ChatStream as server-sent events and closes it however the response ends."""

    def __init__(self, stream: ChatStream, on_close: Callable[[str], None]) -> None:
        self._stream = stream
        self._on_close = on_close
        self._outcome = "cancelled"
        super().__init__(self._body(), media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _body(self) -> AsyncIterator[bytes]:
        try:
            async for event in self._stream.events():
                yield _sse(event)
            self._outcome = "ok"
        except UpstreamError as exc:
            self._outcome = "upstream_error"
            log.warning("LLM stream failed: %s", exc.message)
            error = _api_error(exc)
            yield _sse(error_body(error.message, error.type, error.code))
        yield b"data: [DONE]\n\n"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A disconnect cancels the body: cut the upstream LLM response and free the slot.
            with anyio.CancelScope(shield=True):
                await self._stream.close()
            self._on_close(self._outcome)


def _record(mode: str, outcome: str, stream: bool) -> None:
    CHAT_REQUESTS.labels(mode, outcome).inc()
    log.info("chat finished", extra={"mode": mode, "outcome": outcome, "stream": stream})


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request, service: Service) -> JSONResponse | _SSEResponse:
    mode = service.mode
    try:
        chat = _to_domain(body)
        if body.stream:
            stream = await _unless_disconnected(request, service.open_stream(chat))
            return _SSEResponse(stream, lambda outcome: _record(mode, outcome, True))
        answer = await _unless_disconnected(request, service.complete(chat))
    except APIError:
        _record(mode, "client_error", body.stream)
        raise
    except Saturated as exc:
        _record(mode, "rejected", body.stream)
        raise _api_error(exc) from exc
    except UpstreamError as exc:
        _record(mode, "upstream_error", body.stream)
        log.warning("LLM call failed with %d: %s", exc.status, exc.message)
        raise _api_error(exc) from exc
    except ClientGone:
        _record(mode, "cancelled", body.stream)
        raise APIError(499, "client closed the request", type="api_error") from None
    except Exception:
        _record(mode, "error", body.stream)
        raise
    _record(mode, "ok", False)
    return JSONResponse(answer)


@router.get("/models")
async def list_models(service: Service) -> ModelList:
    try:
        ids = await service.models()
    except UpstreamError as exc:
        raise _api_error(exc) from exc
    return ModelList(data=[ModelCard(id=i) for i in ids])
