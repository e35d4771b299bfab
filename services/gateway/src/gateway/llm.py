"""The LLM behind an OpenAI-compatible API (vLLM in the cluster): the two calls the gateway makes,
`POST /chat/completions` (whole or streamed) and `GET /models`, over `gateway.http_pool`.

One adapter per process: chat answers and batch text jobs both use it. Request heads are built
once; bodies are encoded and answers decoded with orjson; a streamed answer's chunks come out as
they arrive, each with its JSON text (`StreamChunk.raw`) so the gateway can relay it unchanged.
Every wait has LLM_TIMEOUT_SECONDS (connecting, the answer's head, each piece of its body). A
failed call raises the shared error classes, each with a `code` the client sees:

| what happened | error | code |
| --- | --- | --- |
| no answer within LLM_TIMEOUT_SECONDS | DeadlineExceeded (504) | llm_timeout |
| unreachable, or 503 | Unavailable (503, its Retry-After passed on) | llm_unavailable |
| 429 | RateLimited (429, its Retry-After passed on) | llm_rate_limited |
| 400/413/422: the request was refused | InvalidInput (400) | llm_rejected |
| any other status, or an answer that makes no sense | UpstreamError (502) | llm_failed |
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.http_pool import HttpError, HttpPool, HttpTimeout, Response
from gateway.metrics import TIME_TO_FIRST_TOKEN, llm_outcome, observe_llm_call, observe_tokens
from gateway.sse_decoder import EventTooLong, SseDecoder
from genai_common.errors import (
    DeadlineExceeded,
    InvalidInput,
    RateLimited,
    ServiceError,
    Unavailable,
    UpstreamError,
)
from genai_common.logging import request_id_var

log = logging.getLogger(__name__)

# One OpenAI chat message as sent on the wire: {"role": ..., "content": str | [parts], ...}.
Message = dict[str, Any]

# Discovering the served model (LLM_MODEL unset) is a quick call; it has a deadline of its own.
DISCOVERY_DEADLINE_SECONDS = 5.0
USER_AGENT = "genai-gateway"
_DONE = b"[DONE]"


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One chunk of a streamed answer: the decoded object, and its JSON text when it can be relayed
    as it came (one line: it fits one SSE `data:` line), else None."""

    data: dict[str, Any]
    raw: bytes | None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; None when absent or not a number (an HTTP date)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _upstream_message(body: bytes) -> str:
    try:
        error = orjson.loads(body).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (orjson.JSONDecodeError, AttributeError):
        message = None
    text = message if isinstance(message, str) else body.decode("utf-8", "replace")
    return " ".join(text.split())[:300]


def status_error(status: int, headers: dict[str, str], body: bytes) -> ServiceError:
    retry_after = _retry_after(headers.get("retry-after"))
    if status == 429:
        return RateLimited("the language model is rate limited; retry later", retry_after=retry_after or 1.0,
                           code="llm_rate_limited")
    if status in (400, 413, 422):
        return InvalidInput(f"the language model refused the request: {_upstream_message(body)}",
                            code="llm_rejected")
    if status == 503:
        return Unavailable("the language model is unavailable", retry_after=retry_after, code="llm_unavailable")
    return UpstreamError(f"the language model failed (HTTP {status})", code="llm_failed")


def transport_error(exc: HttpError) -> ServiceError:
    if isinstance(exc, HttpTimeout):
        return DeadlineExceeded("the language model did not answer in time", code="llm_timeout")
    return Unavailable("the language model is unreachable", code="llm_unavailable")


def _invalid_answer() -> UpstreamError:
    return UpstreamError("the language model sent an invalid response", code="llm_failed")


def _head(method: str, path: str, host: str, api_key: str, accept: str) -> bytes:
    for value in (path, host, api_key):
        if any(c in value for c in "\r\n\0"):
            raise ValueError("LLM_BASE_URL and LLM_API_KEY must not contain line breaks")
    return (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {api_key}\r\n"
            f"User-Agent: {USER_AGENT}\r\nAccept: {accept}\r\nContent-Type: application/json\r\n").encode("latin-1")


class LLM:
    """Chat completions against one model: LLM_MODEL, or the first model the server lists (cached)."""

    def __init__(self, pool: HttpPool, *, api_key: str, model: str | None, deadline: float) -> None:
        self._pool = pool
        self._model = model
        self._deadline = deadline
        self._lock = asyncio.Lock()
        chat_path, models_path = f"{pool.base_path}/chat/completions", f"{pool.base_path}/models"
        self._chat_head = _head("POST", chat_path, pool.host_header, api_key, "application/json")
        self._stream_head = _head("POST", chat_path, pool.host_header, api_key, "text/event-stream")
        self._models_head = _head("GET", models_path, pool.host_header, api_key, "application/json")

    async def model(self) -> str:
        if self._model:
            return self._model
        async with self._lock:
            if not self._model:
                reply = await self._call(self._models_head, b"", DISCOVERY_DEADLINE_SECONDS)
                models = reply.get("data")
                if not isinstance(models, list) or not models:
                    raise UpstreamError("the language model server lists no models", code="llm_failed")
                if not isinstance(models[0], dict) or not isinstance(models[0].get("id"), str):
                    raise _invalid_answer()
                self._model = models[0]["id"]
                log.info("using model %s, the first the LLM server lists", self._model)
        return self._model

    async def complete(self, messages: Sequence[Message], params: dict[str, Any]) -> dict[str, Any]:
        """One non-streaming completion as a JSON-ready dict (the server's fields, unchanged)."""
        body = {**params, "model": await self.model(), "messages": messages}
        outcome = "cancelled"
        try:
            reply = await self._call(self._chat_head, orjson.dumps(body), self._deadline)
            if not isinstance(reply.get("choices"), list):
                raise _invalid_answer()
            outcome = "ok"
        except ServiceError as exc:
            outcome = llm_outcome(exc)
            raise
        finally:
            observe_llm_call(False, outcome)
        observe_tokens(reply.get("usage"))
        return reply

    async def stream(self, messages: Sequence[Message], params: dict[str, Any],
                     stream_options: dict[str, Any] | None = None) -> LLMStream:
        """Open a streaming completion; errors before the first byte of the body raise here.

        Usage is always asked for (the tokens are counted); the caller drops it unless its own
        `stream_options` asked for it."""
        body = {**params, "model": await self.model(), "messages": messages, "stream": True,
                "stream_options": {**(stream_options or {}), "include_usage": True}}
        started = time.perf_counter()
        try:
            response = await self._send(self._stream_head, orjson.dumps(body), self._deadline)
            if response.status >= 300:
                raise await self._failure(response)
        except ServiceError as exc:
            observe_llm_call(True, llm_outcome(exc))
            raise
        except asyncio.CancelledError:
            observe_llm_call(True, "cancelled")
            raise
        return LLMStream(response, started)

    async def _call(self, head: bytes, body: bytes, deadline: float) -> dict[str, Any]:
        """A whole JSON object from the server, or the error its answer means."""
        response = await self._send(head, body, deadline)
        if response.status >= 300:
            raise await self._failure(response)
        try:
            data = await response.read()
        except HttpError as exc:
            raise transport_error(exc) from exc
        finally:
            response.release()
        try:
            reply = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise _invalid_answer() from None
        if not isinstance(reply, dict):
            raise _invalid_answer()
        return reply

    async def _send(self, head: bytes, body: bytes, deadline: float) -> Response:
        request_id = request_id_var.get()
        request = b"".join((head, b"X-Request-ID: %s\r\n" % request_id.encode() if request_id else b"",
                            b"Content-Length: %d\r\n\r\n" % len(body), body))
        try:
            return await self._pool.request(request, deadline)
        except HttpError as exc:
            raise transport_error(exc) from exc

    @staticmethod
    async def _failure(response: Response) -> ServiceError:
        try:
            body = await response.read()
        except HttpError:
            body = b""
        finally:
            response.release()
        return status_error(response.status, response.headers, body)


class LLMStream:
    """The chunks of one streaming completion; `close()` cuts the upstream response if it is not over.

    The call is counted once, when it ends: ok (the stream finished), the error it ended with,
    or cancelled (closed before its end)."""

    def __init__(self, response: Response, started: float) -> None:
        self._response = response
        self._started = started
        self._ended = False

    async def chunks(self) -> AsyncIterator[StreamChunk]:
        try:
            async for chunk in self._chunks():
                yield chunk
        except ServiceError as exc:
            self._end(llm_outcome(exc))
            raise
        self._end("ok")

    async def _chunks(self) -> AsyncIterator[StreamChunk]:
        decoder = SseDecoder()
        first = True
        try:
            async for piece in self._response.chunks():
                for data in decoder.feed(piece):
                    if data.startswith(_DONE):
                        await self._response.read()  # the end of the body, so the connection is reused
                        return
                    chunk = _chunk(data)
                    if chunk is None:
                        continue
                    if first:
                        TIME_TO_FIRST_TOKEN.observe(time.perf_counter() - self._started)
                        first = False
                    if chunk.data.get("usage"):
                        observe_tokens(chunk.data["usage"])
                    yield chunk
        except HttpError as exc:
            raise transport_error(exc) from exc
        except EventTooLong:
            raise _invalid_answer() from None

    def _end(self, outcome: str) -> None:
        if not self._ended:
            self._ended = True
            observe_llm_call(True, outcome)

    async def close(self) -> None:
        self._end("cancelled")
        self._response.release()


def _chunk(data: bytes) -> StreamChunk | None:
    try:
        item = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _invalid_answer() from None
    if not isinstance(item, dict):
        return None
    if item.get("error"):  # the server failed mid-stream and said so in an event
        raise _invalid_answer()
    return StreamChunk(item, None if b"\n" in data else data)

