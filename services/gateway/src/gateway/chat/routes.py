"""HTTP edge of the chat feature: OpenAI wire ↔ ChatAnswerer.

Errors are not translated here: they propagate to `gateway.errors`, which answers them in the
OpenAI shape. This module only counts how each chat ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.chat.answering import ChatRequest, ChatStream
from gateway.chat.body_limit import BodyLimitedRoute
from gateway.chat.context import ContextRequest
from gateway.chat.prompt import last_user_text
from gateway.chat.schemas import ChatCompletionRequest, ModelCard, ModelList
from gateway.deps import Chat
from gateway.errors import ClientGone, service_error_body
from gateway.metrics import CHAT_REQUESTS, chat_outcome, observe_answer
from gateway.sse import DONE, HEADERS, MEDIA_TYPE, sse_event
from genai_common.errors import InvalidInput, ServiceError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["chat"], route_class=BodyLimitedRoute)
T = TypeVar("T")


def _to_domain(body: ChatCompletionRequest) -> ChatRequest:
    if body.n is not None and body.n > 1:
        raise InvalidInput("only n=1 is supported", param="n", code="unsupported_value")
    if not body.messages:
        raise InvalidInput("messages must not be empty", param="messages")
    messages = body.llm_messages()
    question = last_user_text(messages)
    if question is None:
        raise InvalidInput("messages must contain a user message", param="messages")
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


class _SSEResponse(StreamingResponse):
    """Streams a ChatStream as server-sent events and closes it however the response ends."""

    def __init__(self, stream: ChatStream, on_close: Callable[[str], None]) -> None:
        self._stream = stream
        self._on_close = on_close
        self._outcome = "cancelled"
        super().__init__(self._body(), media_type=MEDIA_TYPE, headers=HEADERS)

    async def _body(self) -> AsyncIterator[bytes]:
        try:
            async for event in self._stream.events():
                yield sse_event(event)
            self._outcome = "ok"
        except ServiceError as exc:
            # The status went out with the first chunk: the error becomes the stream's last event.
            self._outcome = chat_outcome(exc)
            log.warning("LLM stream failed: %s", exc.message)
            yield sse_event(service_error_body(exc))
        yield DONE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A disconnect cancels the body: cut the upstream LLM response and free the slot.
            with anyio.CancelScope(shield=True):
                await self._stream.close()
            self._on_close(self._outcome)


def _record(mode: str, outcome: str, stream: bool, error: Exception | None = None,
            sources: int | None = None) -> None:
    CHAT_REQUESTS.labels(mode, outcome).inc()
    if outcome == "ok" and sources is not None:
        observe_answer(mode, sources)
    if outcome == "upstream_error" and isinstance(error, ServiceError):
        log.warning("LLM call failed: %s", error.message)
    log.info("chat finished", extra={"mode": mode, "outcome": outcome, "stream": stream})


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request, chat: Chat) -> JSONResponse | _SSEResponse:
    mode = chat.mode
    try:
        chat_request = _to_domain(body)
        if body.stream:
            stream = await _unless_disconnected(request, chat.open_stream(chat_request))
            return _SSEResponse(stream, lambda outcome: _record(mode, outcome, True, sources=stream.sources))
        answer = await _unless_disconnected(request, chat.complete(chat_request))
    except Exception as exc:
        _record(mode, chat_outcome(exc), body.stream, exc)
        raise
    _record(mode, "ok", False, sources=len(answer.get("sources") or ()))
    return JSONResponse(answer)


@router.get("/models")
async def list_models(chat: Chat) -> ModelList:
    return ModelList(data=[ModelCard(id=model) for model in await chat.models()])
