"""The LLM behind an OpenAI-compatible API (vLLM in the cluster), through `openai.AsyncOpenAI`.

Failures become `UpstreamError` with the HTTP status the gateway should answer: 504 on timeout,
503 when unreachable or overloaded, 429 passed through with its Retry-After, 400 when the server
refused the request as invalid, 502 for anything else it got wrong.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from typing import Any

import openai

from gateway.settings import GatewaySettings
from genai_common.logging import request_id_var

log = logging.getLogger(__name__)

Message = dict[str, Any]

_CHAT_PATH = "/chat/completions"


class UpstreamError(Exception):
    def __init__(self, status: int, message: str, *, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


def _status_error(exc: openai.APIStatusError) -> UpstreamError:
    retry_after = exc.response.headers.get("retry-after")
    code = exc.status_code
    if code == 429:
        return UpstreamError(429, "the language model is rate limited; retry later", retry_after=retry_after or "1")
    if code in (400, 413, 422):
        return UpstreamError(400, f"the language model refused the request: {exc.message}")
    if code == 503:
        return UpstreamError(503, "the language model is unavailable", retry_after=retry_after)
    return UpstreamError(502, f"the language model failed (HTTP {code})")


def upstream_error(exc: openai.OpenAIError) -> UpstreamError:
    if isinstance(exc, openai.APITimeoutError):
        return UpstreamError(504, "the language model did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamError(503, "the language model is unreachable")
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc)
    return UpstreamError(502, "the language model sent an invalid response")


def open_llm(settings: GatewaySettings, stack: AsyncExitStack) -> LLM | None:
    """The LLM at LLM_BASE_URL (its client closed by `stack`), or None when none is configured."""
    if not settings.llm_base_url:
        return None
    client = openai.AsyncOpenAI(
        base_url=settings.llm_base_url, api_key=settings.llm_api_key.get_secret_value(),
        timeout=settings.llm_timeout_seconds, max_retries=0,
    )
    stack.push_async_callback(client.close)
    return LLM(client, settings.llm_model)


def _headers() -> dict[str, str]:
    request_id = request_id_var.get()
    return {"X-Request-ID": request_id} if request_id else {}


class LLM:
    """Chat completions against one model: LLM_MODEL, or the first model the server lists (cached)."""

    def __init__(self, client: openai.AsyncOpenAI, model: str | None, discovery_timeout: float = 5.0) -> None:
        self._client = client
        self._model = model
        self._discovery_timeout = discovery_timeout
        self._lock = asyncio.Lock()

    async def model(self) -> str:
        if self._model:
            return self._model
        async with self._lock:
            if not self._model:
                try:
                    page = await self._client.models.list(extra_headers=_headers(), timeout=self._discovery_timeout)
                except openai.OpenAIError as exc:
                    raise upstream_error(exc) from exc
                if not page.data:
                    raise UpstreamError(502, "the language model server lists no models")
                self._model = page.data[0].id
                log.info("using model %s, the first the LLM server lists", self._model)
        return self._model

    async def complete(self, messages: Sequence[Message], params: dict[str, Any]) -> dict[str, Any]:
        """One non-streaming completion as a JSON-ready dict (the server's fields, unchanged)."""
        body = {**params, "model": await self.model(), "messages": list(messages)}
        try:
            # The SDK's generic request path: same retries, timeouts and errors, and the body goes
            # through as given (no per-field transform, no response model to build and dump again).
            reply = await self._client.post(_CHAT_PATH, cast_to=object, body=body, options={"headers": _headers()})
        except openai.OpenAIError as exc:
            raise upstream_error(exc) from exc
        if not isinstance(reply, dict) or not isinstance(reply.get("choices"), list):
            raise UpstreamError(502, "the language model sent an invalid response")
        return reply

    async def stream(self, messages: Sequence[Message], params: dict[str, Any],
                     stream_options: dict[str, Any] | None = None) -> LLMStream:
        """Open a streaming completion; errors before the first byte of the body raise here."""
        body = {**params, "model": await self.model(), "messages": list(messages), "stream": True}
        if stream_options:
            body["stream_options"] = stream_options
        try:
            stream = await self._client.post(_CHAT_PATH, cast_to=object, body=body, stream=True,
                                             stream_cls=openai.AsyncStream[object], options={"headers": _headers()})
        except openai.OpenAIError as exc:
            raise upstream_error(exc) from exc
        return LLMStream(stream)


class LLMStream:
    """The chunks of one streaming completion as dicts; `close()` cuts the upstream response."""

    def __init__(self, stream: openai.AsyncStream[Any]) -> None:
        self._stream = stream

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        try:
            async for chunk in self._stream:
                if isinstance(chunk, dict):
                    yield chunk
        except openai.OpenAIError as exc:
            raise upstream_error(exc) from exc

    async def close(self) -> None:
        await self._stream.close()
