"""One chat, end to end: gather sources, build the prompt, ask the LLM (or answer retrieval-only)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.chat.completion import (
    RETRIEVAL_ONLY_MODEL, chunk, completion_body, new_completion_id, retrieval_only_answer, retrieval_only_chunks,
    sources_fields,
)
from gateway.chat.context import ChatContext, ContextGatherer, ContextRequest
from gateway.chat.limiter import ConcurrencyLimiter
from gateway.chat.llm import LLM, LLMStream, Message
from gateway.chat.metrics import TIME_TO_FIRST_TOKEN
from gateway.chat.prompt import build_messages


@dataclass(frozen=True)
class ChatRequest:
    messages: list[Message]
    context: ContextRequest
    # OpenAI fields passed to the LLM as given (temperature, max_tokens, stop, seed, user...).
    params: dict[str, Any] = field(default_factory=dict)
    stream_options: dict[str, Any] | None = None


class ChatStream(Protocol):
    def events(self) -> AsyncIterator[dict[str, Any]]: ...
    async def close(self) -> None: ...


class ChatService:
    def __init__(self, gatherer: ContextGatherer, llm: LLM | None, limiter: ConcurrencyLimiter) -> None:
        self._gatherer = gatherer
        self._llm = llm
        self._limiter = limiter

    @property
    def limiter(self) -> ConcurrencyLimiter:
        return self._limiter

    @property
    def mode(self) -> str:
        return "llm" if self._llm is not None else "retrieval_only"

    async def models(self) -> list[str]:
        return [await self._llm.model()] if self._llm is not None else [RETRIEVAL_ONLY_MODEL]

    async def complete(self, request: ChatRequest) -> dict[str, Any]:
        context = await self._gatherer.gather(request.context)
        if self._llm is None:
            return completion_body(retrieval_only_answer(context), RETRIEVAL_ONLY_MODEL, context)
        await self._limiter.acquire()
        try:
            body = await self._llm.complete(build_messages(request.messages, context.sources), request.params)
        finally:
            self._limiter.release()
        return {**body, **sources_fields(context)}

    async def open_stream(self, request: ChatRequest) -> ChatStream:
        """Everything that can fail with an HTTP status happens here, before the response starts."""
        context = await self._gatherer.gather(request.context)
        if self._llm is None:
            return _StaticStream(retrieval_only_chunks(context))
        await self._limiter.acquire()
        try:
            started = time.perf_counter()
            upstream = await self._llm.stream(build_messages(request.messages, context.sources), request.params,
                                              request.stream_options)
        except BaseException:
            self._limiter.release()
            raise
        return _LLMChatStream(upstream, context, self._limiter, started)


class _StaticStream:
    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self._chunks = chunks

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        for item in self._chunks:
            yield item

    async def close(self) -> None:
        return None


class _LLMChatStream:
    """The LLM's chunks as they arrive, then one chunk with the sources; holds a limiter slot until closed."""

    def __init__(self, upstream: LLMStream, context: ChatContext, limiter: ConcurrencyLimiter, started: float) -> None:
        self._upstream = upstream
        self._context = context
        self._limiter = limiter
        self._started = started
        self._closed = False

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        completion_id, model, created = new_completion_id(), "", int(time.time())
        first = True
        async for item in self._upstream.chunks():
            if first:
                TIME_TO_FIRST_TOKEN.observe(time.perf_counter() - self._started)
                first = False
            completion_id = item.get("id") or completion_id
            model = item.get("model") or model
            created = item.get("created") or created
            yield item
        yield chunk(completion_id, model, created, [], **sources_fields(self._context))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._upstream.close()
        finally:
            self._limiter.release()
