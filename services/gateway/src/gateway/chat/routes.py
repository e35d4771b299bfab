"""HTTP edge of the chat feature: OpenAI wire ↔ ChatAnswerer.

Errors are not translated here: they propagate to `gateway.errors`, which answers them in the
OpenAI shape. This module only counts how each chat ended.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.auth import principal_of
from gateway.chat.answering import ChatRequest, ChatStream, FinalChunk
from gateway.chat.context import ContextRequest
from gateway.chat.disconnect import cancelled_on_disconnect
from gateway.chat.prompt import last_user_text
from gateway.chat.schemas import ChatCompletionRequest, ModelCard, ModelList
from gateway.deps import Chat
from gateway.errors import ClientGone, service_error_body
from gateway.json_response import OrjsonResponse
from gateway.metrics import chat_outcome, observe_answer, observe_chat
from gateway.sse import DONE, HEADERS, MEDIA_TYPE, sse_event
from genai_common.errors import InvalidInput, ServiceError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["chat"])  # bodies are capped by gateway.intake
T = TypeVar("T")


def _to_domain(body: ChatCompletionRequest, tenant: str) -> ChatRequest:
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
                             score_threshold=options.score_threshold, tenant=tenant)
    stream_options = body.stream_options.model_dump(exclude_none=True) if body.stream_options else None
    return ChatRequest(messages=messages, context=context, params=body.llm_params(), stream_options=stream_options)


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Run `work`, cancelling it (and its upstream calls) if the client goes away first."""
    with cancelled_on_disconnect(request.receive):
        return await work
    raise ClientGone()  # reached only when the client went away


class _Tail(bytes):
    """The last bytes of a stream: its last event and `[DONE]`, sent with the end of the body."""


class _SSEResponse(StreamingResponse):
    """Streams a ChatStream as server-sent events and closes it however the response ends; stops
    as soon as the client disconnects (one watcher task, not a task group per stream). Each event
    goes out as it comes; the last one (the one with the sources, or an error), `[DONE]` and the
    end of the body go out in one write."""

    def __init__(self, stream: ChatStream, on_close: Callable[[str], None]) -> None:
        self._stream = stream
        self._on_close = on_close
        self._outcome = "cancelled"
        super().__init__(self._body(), media_type=MEDIA_TYPE, headers=HEADERS)

    async def _body(self) -> AsyncIterator[bytes]:
        tail = DONE
        try:
            async for event in self._stream.events():
                if isinstance(event, FinalChunk):
                    tail = sse_event(event) + DONE
                else:
                    yield sse_event(event)
            self._outcome = "ok"
        except ServiceError as exc:
            # The status went out with the first chunk: the error becomes the stream's last event.
            self._outcome = chat_outcome(exc)
            log.warning("LLM stream failed: %s", exc.message)
            tail = sse_event(service_error_body(exc)) + DONE
        yield _Tail(tail)

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self.body_iterator:
            await send({"type": "http.response.body", "body": chunk, "more_body": not isinstance(chunk, _Tail)})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            with cancelled_on_disconnect(receive):
                await self.stream_response(send)
        finally:
            # However it ended (done, the client gone, shutdown): cut the upstream LLM response and
            # free the slot.
            with anyio.CancelScope(shield=True):
                await self._stream.close()
            self._on_close(self._outcome)


def _record(mode: str, outcome: str, stream: bool, error: Exception | None = None,
            sources: int | None = None) -> None:
    observe_chat(mode, outcome)
    if outcome == "ok" and sources is not None:
        observe_answer(mode, sources)
    if outcome == "upstream_error" and isinstance(error, ServiceError):
        log.warning("LLM call failed: %s", error.message)
    # One line per chat is DEBUG: the line (a record, its JSON, a write to stdout) cost about a sixth
    # of a chat's CPU in the gateway; gateway_chat_requests_total counts the same outcomes.
    if log.isEnabledFor(logging.DEBUG):
        log.debug("chat finished", extra={"mode": mode, "outcome": outcome, "stream": stream})


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request, chat: Chat) -> OrjsonResponse | _SSEResponse:
    mode = chat.mode
    try:
        chat_request = _to_domain(body, principal_of(request).tenant)
        if body.stream:
            stream = await _unless_disconnected(request, chat.open_stream(chat_request))
            return _SSEResponse(stream, lambda outcome: _record(mode, outcome, True, sources=stream.sources))
        answer = await _unless_disconnected(request, chat.complete(chat_request))
    except Exception as exc:
        _record(mode, chat_outcome(exc), body.stream, exc)
        raise
    _record(mode, "ok", False, sources=len(answer.get("sources") or ()))
    return OrjsonResponse(answer)


@router.get("/models")
async def list_models(chat: Chat) -> ModelList:
    return ModelList(data=[ModelCard(id=model) for model in await chat.models()])
