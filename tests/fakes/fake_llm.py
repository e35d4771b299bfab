"""FakeLLM: a real OpenAI-compatible HTTP server (uvicorn + starlette) for tests and benchmarks.

Serves `GET /v1/models` and `POST /v1/chat/completions` (streaming and not) on 127.0.0.1, records
every request it receives (body, messages, headers, the client port of its connection), and
answers deterministically: the answer names the source numbers it found fenced in the prompt
(`<<<SOURCE n ...`). It can be told to wait before answering, to fail with a status, or to
stream slowly, and it records whether a stream was cut by the client before it finished.
`GET /metrics` serves what vLLM would, under vLLM's metric names (FakeVLLMMetrics), fed by the
fake's own traffic.

In-process: `with FakeLLM() as llm: ... llm.base_url ...` (uvicorn runs in a thread).
As a process (benchmarks): `python -m tests.fakes.fake_llm --port 8100` (or FAKE_LLM_PORT=8100).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.fakes.fake_vllm_metrics import FakeVLLMMetrics

_SOURCE = re.compile(r"<<<SOURCE (\d+) ")


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)
    client_port: int = 0  # the caller's port: one per connection it opened

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    @property
    def prompt(self) -> str:
        """All message texts joined: what the model would read."""
        return "\n".join(_text(m) for m in self.messages)


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def answer_for(messages: list[dict[str, Any]]) -> str:
    """The deterministic answer: which sources the prompt carried."""
    seen = sorted({int(n) for m in messages for n in _SOURCE.findall(_text(m))})
    cited = " ".join(f"[{n}]" for n in seen) if seen else "none"
    return f"Fake answer. Sources seen: {cited}."


class _Body(StreamingResponse):
    """A streaming response that always closes its generator, so a cut is recorded at once."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()  # type: ignore[union-attr]


class Hold:
    """While set, chat requests wait; `clear()` lets every waiting one through. Set and cleared
    from a test's thread, waited on in the server's loop (its own thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = False
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def set(self) -> None:
        with self._lock:
            self._held = True

    def clear(self) -> None:
        with self._lock:
            self._held = False
            waiting, self._waiting = self._waiting, []
        for loop, released in waiting:
            loop.call_soon_threadsafe(_settle, released)

    def is_set(self) -> bool:
        with self._lock:
            return self._held

    async def passed(self) -> None:
        """Return at once when not held, else when cleared."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._held:
                return
            released: asyncio.Future[None] = loop.create_future()
            self._waiting.append((loop, released))
        await released


def _settle(released: asyncio.Future[None]) -> None:
    if not released.done():
        released.set_result(None)


class FakeLLM:
    def __init__(self, model: str = "fake-model", port: int = 0) -> None:
        self.model = model
        self.port = port or _free_port()
        # Behaviour, changeable between (or during) requests.
        self.delay = 0.0                   # seconds before answering
        self.fail_status: int | None = None
        self.retry_after: str | None = None
        self.stream_interval = 0.0         # seconds between streamed chunks
        self.filler_tokens = 0             # extra tokens streamed after the answer
        self.held = Hold()                 # while set, chat requests wait before answering
        self.break_after: int | None = None  # stream this many deltas, then an error event
        self.drop_after: int | None = None   # stream this many deltas, then drop the connection
        # What happened.
        self.requests: list[RecordedRequest] = []
        self.streams_cut = 0
        self.streams_completed = 0
        self.stream_cut = threading.Event()
        self.vllm = FakeVLLMMetrics(model)
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        with self._lock:
            self.delay, self.fail_status, self.retry_after = 0.0, None, None
            self.stream_interval, self.filler_tokens = 0.0, 0
            self.held.clear()
            self.break_after = self.drop_after = None
            self.requests.clear()
            self.streams_cut = self.streams_completed = 0
            self.stream_cut.clear()

    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # --- the app ---------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/metrics", self._metrics, methods=["GET"]),
        ])

    async def _metrics(self, request: Request) -> Response:
        return Response(self.vllm.exposition(), media_type="text/plain; version=0.0.4")

    async def _record(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        body = json.loads(raw) if raw else {}
        with self._lock:
            port = request.client.port if request.client else 0
            self.requests.append(RecordedRequest(request.url.path, dict(request.headers), body, port))
        return body

    async def _models(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"object": "list", "data": [
            {"id": self.model, "object": "model", "created": 0, "owned_by": "fake"}]})

    async def _chat(self, request: Request) -> Response:
        body = await self._record(request)
        started = time.perf_counter()
        with self.vllm.waiting():
            if self.delay:
                await asyncio.sleep(self.delay)
            await self.held.passed()
        if self.fail_status is not None:
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            error = {"error": {"message": f"fake failure {self.fail_status}", "type": "server_error"}}
            return JSONResponse(error, status_code=self.fail_status, headers=headers)
        answer = answer_for(body.get("messages", []))
        if body.get("stream"):
            return _Body(self._stream(body, answer, started), media_type="text/event-stream")
        completion = self._completion(body, answer)
        self.vllm.first_token(time.perf_counter() - started)
        self.vllm.finished(completion["usage"]["prompt_tokens"], completion["usage"]["completion_tokens"])
        return JSONResponse(completion)

    def _completion(self, body: dict[str, Any], answer: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-fake-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": len(answer.split()),
                      "total_tokens": 10 + len(answer.split())},
        }

    async def _stream(self, body: dict[str, Any], answer: str, started: float) -> AsyncIterator[bytes]:
        base = {"id": f"chatcmpl-fake-{time.monotonic_ns()}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body.get("model") or self.model}
        tokens = [f"{w} " for w in answer.split()] + ["tok "] * self.filler_tokens
        deltas = [{"role": "assistant", "content": ""}] + [{"content": t} for t in tokens]
        finished = False
        running = self.vllm.running()
        running.__enter__()
        try:
            for sent, delta in enumerate(deltas):
                if sent == 1:
                    self.vllm.first_token(time.perf_counter() - started)
                if self.break_after is not None and sent >= self.break_after:
                    yield _event({"error": {"message": "fake failure mid-stream", "type": "server_error"}})
                    finished = True
                    return
                if self.drop_after is not None and sent >= self.drop_after:
                    raise ConnectionAbortedError("fake connection drop")  # the body ends mid-chunk
                yield _event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
                if self.stream_interval:
                    await asyncio.sleep(self.stream_interval)
            yield _event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                yield _event({**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": len(tokens),
                                                               "total_tokens": 10 + len(tokens)}})
            yield b"data: [DONE]\n\n"
            finished = True
        finally:
            running.__exit__(None, None, None)
            self.vllm.finished(10, len(tokens), "stop" if finished else "abort")
            with self._lock:
                if finished:
                    self.streams_completed += 1
                else:
                    self.streams_cut += 1
                    self.stream_cut.set()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> FakeLLM:
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", access_log=False, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-llm", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("FakeLLM did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = self._thread = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description="An OpenAI-compatible fake LLM server on 127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FAKE_LLM_PORT", "0")) or None,
                        required=False, help="default: $FAKE_LLM_PORT")
    parser.add_argument("--model", default="fake-model")
    args = parser.parse_args()
    if not args.port:
        parser.error("give --port or FAKE_LLM_PORT")
    fake = FakeLLM(args.model, args.port)
    uvicorn.run(fake.app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
