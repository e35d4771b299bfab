"""One chat, end to end: gather sources, build the prompt, ask the LLM (or answer retrieval-only)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.chat.completion import (
    RETRIEVAL_ONLY_MODEL,
    chunk,
    completion_body,
    new_completion_id,
    retrieval_only_answer,
    retrieval_only_chunks,
    sources_fields,
)
from gateway.chat.context import ChatContext, ContextGatherer, ContextRequest
from gateway.chat.limiter import ConcurrencyLimiter
from gateway.chat.prompt import build_messages
from gateway.chat.urls import without_urls
from gateway.llm import Message, StreamChunk


@dataclass(frozen=True)
class ChatRequest:
    messages: list[Message]
    context: ContextRequest
    # OpenAI fields passed to the LLM as given (temperature, max_tokens, stop, seed, user...).
    params: dict[str, Any] = field(default_factory=dict)
    stream_options: dict[str, Any] | None = None


class FinalChunk(dict[str, Any]):
    """The last event of every streamed answer: the chunk that carries its sources."""


class ChatStream(Protocol):
    """The events of a streamed answer: objects, or JSON texts relayed as the LLM sent them; the
    last one is a FinalChunk."""

    @property
    def sources(self) -> int: ...  # how many sources the answer cites
    def events(self) -> AsyncIterator[dict[str, Any] | bytes]: ...
    async def close(self) -> None: ...


class UpstreamStream(Protocol):
    def chunks(self) -> AsyncIterator[StreamChunk]: ...
    async def close(self) -> None: ...


class ChatModel(Protocol):
    """The LLM (`gateway.llm.LLM`); a failed call raises a `genai_common.errors.ServiceError`."""

    async def model(self) -> str: ...
    async def complete(self, messages: Sequence[Message], params: dict[str, Any]) -> dict[str, Any]: ...
    async def stream(self, messages: Sequence[Message], params: dict[str, Any],
                     stream_options: dict[str, Any] | None = None) -> UpstreamStream: ...


class ChatAnswerer:
    def __init__(self, gatherer: ContextGatherer, llm: ChatModel | None, limiter: ConcurrencyLimiter) -> None:
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
        await self._limiter.acquire()
        try:
            context = await self._gatherer.gather(request.context)
            if self._llm is None:
                content = await _retrieval_only_answer(context, request)
                return completion_body(content, RETRIEVAL_ONLY_MODEL, context)
            body = await self._llm.complete(_prompt(request, context), request.params)
        finally:
            self._limiter.release()
        body.update(sources_fields(context))
        return body

    async def open_stream(self, request: ChatRequest) -> ChatStream:
        """Everything that can fail with an HTTP status happens here, before the response starts."""
        await self._limiter.acquire()
        held = True
        try:
            context = await self._gatherer.gather(request.context)
            if self._llm is None:
                include_usage = bool((request.stream_options or {}).get("include_usage"))
                content = await _retrieval_only_answer(context, request)
                return _StaticStream(retrieval_only_chunks(content, context, include_usage), len(context.sources))
            upstream = await self._llm.stream(_prompt(request, context), request.params, request.stream_options)
            held = False  # the stream gives the slot back when it is closed
            return _LLMChatStream(upstream, context, self._limiter, request.stream_options)
        finally:
            if held:
                self._limiter.release()


def _prompt(request: ChatRequest, context: ChatContext) -> list[Message]:
    return build_messages(request.messages, context.sources, unread=context.unread)


async def _retrieval_only_answer(context: ChatContext, request: ChatRequest) -> str:
    # Quoting the best sentences of long pages is CPU work (milliseconds per page): off the loop.
    return await asyncio.to_thread(retrieval_only_answer, context, without_urls(request.context.question))


class _StaticStream:
    def __init__(self, chunks: list[dict[str, Any]], sources: int) -> None:
        self._chunks = [*chunks[:-1], FinalChunk(chunks[-1])]
        self.sources = sources

    async def events(self) -> AsyncIterator[dict[str, Any] | bytes]:
        for item in self._chunks:
            yield item

    async def close(self) -> None:
        return None


class _LLMChatStream:
    """The LLM's chunks as they arrive, then one chunk with the sources; holds a limiter slot until closed."""

    def __init__(self, upstream: UpstreamStream, context: ChatContext, limiter: ConcurrencyLimiter,
                 stream_options: dict[str, Any] | None) -> None:
        self._upstream = upstream
        self._context = context
        self._limiter = limiter
        # The LLM adapter always asks for usage (it counts tokens); the client gets it when it asked.
        self._usage = bool((stream_options or {}).get("include_usage"))
        self._closed = False
        self.sources = len(context.sources)

    async def events(self) -> AsyncIterator[dict[str, Any] | bytes]:
        """The LLM's chunks as they arrive (their JSON text unchanged when it can be), then the
        sources on the last chunk: the usage chunk that `stream_options.include_usage` asks for (it
        is the last one by the API), or one of ours."""
        completion_id, model, created = "", "", 0
        usage_chunk: dict[str, Any] | None = None
        async for item in self._upstream.chunks():
            data = item.data
            completion_id = data.get("id") or completion_id
            model = data.get("model") or model
            created = data.get("created") or created
            if not data.get("choices") and data.get("usage"):
                usage_chunk = data if self._usage else None
                continue
            if not self._usage and "usage" in data:
                del data["usage"]  # `usage: null` on every chunk when usage was asked for: encoded again
                yield data
            else:
                yield data if item.raw is None else item.raw
        last = usage_chunk or chunk(completion_id or new_completion_id(), model, created or int(time.time()), [])
        yield FinalChunk(last, **sources_fields(self._context))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._upstream.close()
        finally:
            self._limiter.release()
