"""FakeFastLLM: an OpenAI-compatible server cheap enough never to be a benchmark's bottleneck.

`tests.fakes.fake_llm.FakeLLM` records every request and is built on starlette: right for
tests, too costly to measure a gateway that serves thousands of chats a second. This one is a
bare asyncio protocol (uvloop, the httptools parser): it answers `POST /v1/chat/completions`
with a fixed completion after `--delay` seconds, or, when the body asks for `"stream": true`,
with `--chunks` chunks `--interval` seconds apart (the first after the delay), the usage chunk
when `stream_options.include_usage` asks for it, then `data: [DONE]`; `GET /v1/models` lists
the model. Timers, not tasks: a request costs the server a few microseconds.

    python -m tests.fakes.fake_llm_fast --port 8100 [--delay 0.2] [--chunks 8] [--interval 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httptools
import orjson
import uvloop

MODEL = "fake-model"


def _completion() -> bytes:
    return orjson.dumps({
        "id": "chatcmpl-fast", "object": "chat.completion", "created": int(time.time()), "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Fake answer. Sources seen: none."},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    })


def _chunk_events(chunks: int, usage: bool) -> list[bytes]:
    """The SSE events of one streamed answer, each framed as one HTTP chunk; the last ends the body
    (with a usage chunk when `usage`, as `stream_options.include_usage` asks)."""
    base = {"id": "chatcmpl-fast", "object": "chat.completion.chunk", "created": int(time.time()), "model": MODEL}
    deltas = [{"role": "assistant", "content": ""}] + [{"content": f"tok{i} "} for i in range(chunks - 1)]
    events = [orjson.dumps({**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]}) for d in deltas]
    ending = [{**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    if usage:
        ending.append({**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": chunks,
                                                         "total_tokens": 10 + chunks}})
    framed = [_http_chunk(b"data: " + e + b"\n\n") for e in events]
    tail = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in ending) + b"data: [DONE]\n\n"
    framed[-1] += _http_chunk(tail) + b"0\r\n\r\n"
    return framed


def _asks_stream(body: bytes) -> tuple[bool, bool]:
    """(a streamed answer?, with usage?)"""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False, False
    if not isinstance(request, dict) or not request.get("stream"):
        return False, False
    return True, bool((request.get("stream_options") or {}).get("include_usage"))


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _head(status: bytes, content_type: bytes, length: int | None) -> bytes:
    framing = b"Content-Length: %d\r\n" % length if length is not None else b"Transfer-Encoding: chunked\r\n"
    return b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type + b"\r\n" + framing + b"\r\n"


class Answers:
    """The fixed bytes of every answer, built once."""

    def __init__(self, delay: float, chunks: int, interval: float) -> None:
        self.delay, self.interval = delay, interval
        body = _completion()
        self.completion = _head(b"200 OK", b"application/json", len(body)) + body
        models = orjson.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0,
                                                           "owned_by": "fake"}]})
        self.models = _head(b"200 OK", b"application/json", len(models)) + models
        self.not_found = _head(b"404 Not Found", b"application/json", 2) + b"{}"
        self.stream_head = _head(b"200 OK", b"text/event-stream", None)
        self.stream_chunks = {usage: _chunk_events(max(1, chunks), usage) for usage in (False, True)}


class _Connection(asyncio.Protocol):
    def __init__(self, answers: Answers) -> None:
        self._answers = answers
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._timers: list[asyncio.TimerHandle] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self._timers:
            timer.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        url, body = self._url, b"".join(self._body)
        self._url, self._body = b"", []
        self._timers = [t for t in self._timers if not t.cancelled()]
        loop = asyncio.get_running_loop()
        if url.endswith(b"/models"):
            self._write(self._answers.models)
        elif not url.endswith(b"/chat/completions"):
            self._write(self._answers.not_found)
        elif (asked := _asks_stream(body))[0]:
            self._timers.append(loop.call_later(self._answers.delay, self._stream, 0, asked[1]))
        elif self._answers.delay:
            self._timers.append(loop.call_later(self._answers.delay, self._write, self._answers.completion))
        else:
            self._write(self._answers.completion)

    def _stream(self, sent: int, usage: bool) -> None:
        chunks = self._answers.stream_chunks[usage]
        self._write((self._answers.stream_head if sent == 0 else b"") + chunks[sent])
        if sent + 1 < len(chunks):
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(self._answers.interval, self._stream, sent + 1, usage))

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)


async def serve(port: int, answers: Answers) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(answers), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="A lean OpenAI-compatible fake LLM server on 127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before answering (or the first chunk)")
    parser.add_argument("--chunks", type=int, default=8, help="chunks of a streamed answer")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between streamed chunks")
    args = parser.parse_args()
    uvloop.run(serve(args.port, Answers(args.delay, args.chunks, args.interval)))


if __name__ == "__main__":
    main()
