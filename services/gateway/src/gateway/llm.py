"""The LLM behind an OpenAI-compatible API (vLLM in the cluster), through `openai.AsyncOpenAI`.

One adapter per process: chat answers and batch text jobs both use it. A failed call raises the
shared error classes, each with a `code` the client sees:

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
from typing import Any

import openai

from gateway.metrics import TIME_TO_FIRST_TOKEN, llm_outcome, observe_llm_call, observe_tokens
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

_CHAT_PATH = "/chat/completions"
# Discovering the served model (LLM_MODEL unset) is a quick call; it has a deadline of its own.
DISCOVERY_DEADLINE_SECONDS = 5.0


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; None when absent or not a number (an HTTP date)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _status_error(exc: openai.APIStatusError) -> ServiceError:
    retry_after = _retry_after(exc.response.headers.get("retry-after"))
    status = exc.status_code
    if status == 429:
        return RateLimited("the language model is rate limited; retry later", retry_after=retry_after or 1.0,
                           code="llm_rate_limited")
    if status in (400, 413, 422):
        return InvalidInput(f"the language model refused the request: {exc.message}", code="llm_rejected")
    if status == 503:
        return Unavailable("the language model is unavailable", retry_after=retry_after, code="llm_unavailable")
    return UpstreamError(f"the language model failed (HTTP {status})", code="llm_failed")


def llm_error(exc: openai.OpenAIError) -> ServiceError:
    if isinstance(exc, openai.APITimeoutError):
        return DeadlineExceeded("the language model did not answer in time", code="llm_timeout")
    if isinstance(exc, openai.APIConnectionError):
        return Unavailable("the language model is unreachable", code="llm_unavailable")
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc)
    return _invalid_answer()


def _invalid_answer() -> UpstreamError:
    return UpstreamError("the language model sent an invalid response", code="llm_failed")


def _headers() -> dict[str, str]:
    request_id = request_id_var.get()
    return {"X-Request-ID": request_id} if request_id else {}


class LLM:
    """Chat completions against one model: LLM_MODEL, or the first model the server lists (cached)."""

    def __init__(self, client: openai.AsyncOpenAI, model: str | None) -> None:
        self._client = client
        self._model = model
        self._lock = asyncio.Lock()

    async def model(self) -> str:
        if self._model:
            return self._model
        async with self._lock:
            if not self._model:
                try:
                    page = await self._client.models.list(extra_headers=_headers(),
                                                          timeout=DISCOVERY_DEADLINE_SECONDS)
                except openai.OpenAIError as exc:
                    raise llm_error(exc) from exc
                if not page.data:
                    raise UpstreamError("the language model server lists no models", code="llm_failed")
                self._model = page.data[0].id
                log.info("using model %s, the first the LLM server lists", self._model)
        return self._model

    async def complete(self, messages: Sequence[Message], params: dict[str, Any]) -> dict[str, Any]:
        """One non-streaming completion as a JSON-ready dict (the server's fields, unchanged)."""
        body = {**params, "model": await self.model(), "messages": list(messages)}
        outcome = "cancelled"
        try:
            # The SDK's generic request path: same timeouts and errors, and the body goes through
            # as given (no per-field transform, no response model to build and dump again).
            reply = await self._client.post(_CHAT_PATH, cast_to=object, body=body, options={"headers": _headers()})
            if not isinstance(reply, dict) or not isinstance(reply.get("choices"), list):
                raise _invalid_answer()
            outcome = "ok"
        except openai.OpenAIError as exc:
            error = llm_error(exc)
            outcome = llm_outcome(error)
            raise error from exc
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
        body = {**params, "model": await self.model(), "messages": list(messages), "stream": True,
                "stream_options": {**(stream_options or {}), "include_usage": True}}
        started = time.perf_counter()
        try:
            stream = await self._client.post(_CHAT_PATH, cast_to=object, body=body, stream=True,
                                             stream_cls=openai.AsyncStream[object], options={"headers": _headers()})
        except openai.OpenAIError as exc:
            error = llm_error(exc)
            observe_llm_call(True, llm_outcome(error))
            raise error from exc
        except asyncio.CancelledError:
            observe_llm_call(True, "cancelled")
            raise
        return LLMStream(stream, started)


class LLMStream:
    """The chunks of one streaming completion as dicts; `close()` cuts the upstream response.

    The call is counted once, when it ends: ok (the stream finished), the error it ended with,
    or cancelled (closed before its end)."""

    def __init__(self, stream: openai.AsyncStream[Any], started: float) -> None:
        self._stream = stream
        self._started = started
        self._ended = False

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        first = True
        try:
            async for chunk in self._stream:
                if not isinstance(chunk, dict):
                    continue
                if first:
                    TIME_TO_FIRST_TOKEN.observe(time.perf_counter() - self._started)
                    first = False
                if chunk.get("usage"):
                    observe_tokens(chunk["usage"])
                yield chunk
        except openai.OpenAIError as exc:
            error = llm_error(exc)
            self._end(llm_outcome(error))
            raise error from exc
        self._end("ok")

    def _end(self, outcome: str) -> None:
        if not self._ended:
            self._ended = True
            observe_llm_call(True, outcome)

    async def close(self) -> None:
        self._end("cancelled")
        await self._stream.close()
