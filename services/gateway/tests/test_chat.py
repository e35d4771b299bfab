"""POST /v1/chat/completions and GET /v1/models through the real app (ASGITransport), real peers.py
clients against in-process gRPC fakes, and FakeLLM as the OpenAI-compatible model server."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from prometheus_client import REGISTRY

from gateway.chat.context import ContextGatherer
from genai_common.logging import request_id_var
from tests.fakes.fake_llm import FakeLLM
from tests.fakes.fake_peers import FakePeers
from tests.support.eventually import eventually
from tests.support.procs import free_port

PAGE_URL = "https://docs.example/guide"
PAGE_TEXT = "The frobnicator must be calibrated every 30 days."
PASSAGE = "Section 4: calibration uses the blue knob."


def _ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "any", "messages": [{"role": "user", "content": text}], **extra}


def _seed(peers: FakePeers) -> None:
    peers.scraper.pages[PAGE_URL] = ("Frobnicator guide", PAGE_TEXT)
    peers.retriever.add_hit("doc-7", "manual.pdf", 4, PASSAGE, 0.83)


def _sse_events(text: str) -> list[Any]:
    lines = [line.removeprefix("data: ") for line in text.split("\n\n") if line.startswith("data: ")]
    assert lines[-1] == "[DONE]", lines[-3:]
    return [json.loads(line) for line in lines[:-1]]


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_answer_is_grounded_in_the_page_and_the_documents(chat_gateway, fake_peers, fake_llm: FakeLLM) -> None:
    _seed(fake_peers)
    client = (await chat_gateway()).client
    body = {"model": "any", "messages": [
        {"role": "user", "content": "Earlier I read https://old.example/page"},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": f"How often to calibrate? See {PAGE_URL}."},
    ], "temperature": 0.2, "max_tokens": 50}
    answered = _metric("gateway_chat_requests_total", mode="llm", outcome="ok")
    reply = await client.post("/v1/chat/completions", json=body, headers={"X-Request-ID": "req-grounded-1"})
    assert _metric("gateway_chat_requests_total", mode="llm", outcome="ok") == answered + 1
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "Fake answer. Sources seen: [1] [2]."
    assert answer["sources"] == [
        {"id": 1, "kind": "url", "title": "Frobnicator guide", "url": PAGE_URL, "score": None, "snippet": PAGE_TEXT},
        {"id": 2, "kind": "document", "name": "manual.pdf", "document_id": "doc-7", "page": 4,
         "score": answer["sources"][1]["score"], "snippet": PASSAGE},
    ]
    assert abs(answer["sources"][1]["score"] - 0.83) < 1e-6
    assert answer["sources_unavailable"] == []
    assert reply.headers["x-request-id"] == "req-grounded-1"
    # Only the last user message's URL was scraped; the question went to the retriever.
    assert fake_peers.scraper.requests == [[PAGE_URL]]
    assert fake_peers.retriever.queries[0].query == "How often to calibrate? See"  # URLs are not searched for
    assert fake_peers.retriever.queries[0].top_k == 4
    # The LLM saw both sources, fenced, and the client's parameters; the request id travelled everywhere.
    (sent,) = fake_llm.chat_requests()
    assert PAGE_TEXT in sent.prompt and PASSAGE in sent.prompt and "<<<SOURCE 2 " in sent.prompt
    assert sent.body["temperature"] == 0.2 and sent.body["max_tokens"] == 50 and "genai" not in sent.body
    assert sent.headers["x-request-id"] == "req-grounded-1"
    assert fake_peers.scraper.behaviour.request_ids == ["req-grounded-1"]
    assert fake_peers.retriever.behaviour.request_ids == ["req-grounded-1"]


async def test_stream_sends_tokens_then_a_sources_chunk_then_done(chat_gateway, fake_peers, fake_llm) -> None:
    _seed(fake_peers)
    client = (await chat_gateway()).client
    reply = await client.post("/v1/chat/completions", json=_ask(f"Summarise {PAGE_URL}", stream=True,
                                                                   stream_options={"include_usage": True}))
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(reply.text)
    text = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    assert text.strip() == "Fake answer. Sources seen: [1] [2]."
    last = events[-1]
    assert last["choices"] == [] and last["object"] == "chat.completion.chunk"
    assert [s["kind"] for s in last["sources"]] == ["url", "document"]
    assert last["sources_unavailable"] == []
    # stream_options reached the LLM, and its usage rides on the last chunk (the API's place for it).
    assert last["usage"]["total_tokens"] > 0 and not any(e.get("usage") for e in events[:-1])
    assert _metric("gateway_llm_time_to_first_token_seconds_count") >= 1


async def test_failed_page_is_not_a_source_and_not_an_outage(chat_gateway, fake_peers, fake_llm) -> None:
    fake_peers.retriever.add_hit("doc-1", "a.pdf", 1, PASSAGE, 0.5)
    client = (await chat_gateway()).client
    reply = await client.post("/v1/chat/completions", json=_ask("Read https://missing.example/x please"))
    answer = reply.json()
    assert [s["kind"] for s in answer["sources"]] == ["document"]
    assert answer["sources"][0]["id"] == 1
    assert answer["sources_unavailable"] == []


async def test_failing_scraper_is_named_and_the_answer_still_comes(chat_gateway, fake_peers, fake_llm) -> None:
    _seed(fake_peers)
    fake_peers.scraper.behaviour.fail = True
    before = _metric("gateway_backend_request_duration_seconds_count", backend="scraper", outcome="failed")
    client = (await chat_gateway()).client
    for stream in (False, True):
        reply = await client.post("/v1/chat/completions", json=_ask(f"Check {PAGE_URL}", stream=stream))
        assert reply.status_code == 200
        result = _sse_events(reply.text)[-1] if stream else reply.json()
        assert result["sources_unavailable"] == ["scraper"]
        assert [s["kind"] for s in result["sources"]] == ["document"]
    assert _metric("gateway_backend_request_duration_seconds_count", backend="scraper", outcome="failed") == before + 2
    for sent in fake_llm.chat_requests():
        assert PASSAGE in sent.prompt and PAGE_TEXT not in sent.prompt and "<<<SOURCE 2 " not in sent.prompt


async def test_slow_retriever_is_cut_at_its_deadline(chat_gateway, fake_peers, fake_llm) -> None:
    _seed(fake_peers)
    fake_peers.retriever.behaviour.hang = True
    client = (await chat_gateway(gateway_retrieve_deadline_seconds=0.3)).client
    reply = await client.post("/v1/chat/completions", json=_ask(f"Check {PAGE_URL}"))
    assert reply.status_code == 200
    answer = reply.json()
    assert answer["sources_unavailable"] == ["retriever"]
    assert [s["kind"] for s in answer["sources"]] == ["url"]
    assert answer["choices"][0]["message"]["content"] == "Fake answer. Sources seen: [1]."


async def test_genai_options_switch_sources_off_and_tune_search(chat_gateway, fake_peers, fake_llm) -> None:
    _seed(fake_peers)
    client = (await chat_gateway()).client
    reply = await client.post("/v1/chat/completions", json=_ask(
        f"Check {PAGE_URL}", genai={"rag": True, "scrape": False, "top_k": 2, "score_threshold": 0.25}))
    assert [s["kind"] for s in reply.json()["sources"]] == ["document"]
    assert fake_peers.scraper.requests == []
    query = fake_peers.retriever.queries[0]
    assert query.top_k == 2 and abs(query.score_threshold - 0.25) < 1e-6
    reply = await client.post("/v1/chat/completions", json=_ask("hi", genai={"rag": False, "scrape": False}))
    assert reply.json()["sources"] == [] and len(fake_peers.retriever.queries) == 1
    assert "<<<SOURCE" not in fake_llm.chat_requests()[-1].prompt


async def test_retrieval_only_mode_lists_passages_clearly_labelled(chat_gateway, fake_peers, fake_llm) -> None:
    _seed(fake_peers)
    client = (await chat_gateway(llm=False)).client
    reply = await client.post("/v1/chat/completions", json=_ask(f"Calibration? {PAGE_URL}"))
    answer = reply.json()
    assert answer["model"] == "retrieval-only"
    content = answer["choices"][0]["message"]["content"]
    assert "not a generated answer" in content and "Retrieved passages" in content
    assert f"[1] Frobnicator guide <{PAGE_URL}>\n{PAGE_TEXT}" in content
    assert "[2] manual.pdf, page 4 (score 0.83)\n" + PASSAGE in content
    assert [s["id"] for s in answer["sources"]] == [1, 2]
    assert fake_llm.chat_requests() == []

    reply = await client.post("/v1/chat/completions", json=_ask("Calibration?", stream=True))
    events = _sse_events(reply.text)
    streamed = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    assert "not a generated answer" in streamed and PASSAGE in streamed
    assert events[-1]["sources"][0]["kind"] == "document"
    assert {e["model"] for e in events} == {"retrieval-only"}

    models = (await client.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == ["retrieval-only"]


async def test_retrieval_only_with_nothing_found_says_so(chat_gateway, fake_peers) -> None:
    fake_peers.retriever.behaviour.fail = True
    client = (await chat_gateway(llm=False)).client
    answer = (await client.post("/v1/chat/completions", json=_ask("anything"))).json()
    assert "No passages were retrieved" in answer["choices"][0]["message"]["content"]
    assert answer["sources_unavailable"] == ["retriever"]


async def test_models_lists_the_configured_or_the_served_model(chat_gateway, fake_llm) -> None:
    served = (await chat_gateway()).client
    assert [m["id"] for m in (await served.get("/v1/models")).json()["data"]] == ["fake-model"]
    assert [m["id"] for m in (await served.get("/v1/models")).json()["data"]] == ["fake-model"]
    assert len([r for r in fake_llm.requests if r.path == "/v1/models"]) == 1  # cached
    await served.post("/v1/chat/completions", json=_ask("hi"))
    assert fake_llm.chat_requests()[-1].body["model"] == "fake-model"
    configured = (await chat_gateway(llm_model="my-model")).client
    assert [m["id"] for m in (await configured.get("/v1/models")).json()["data"]] == ["my-model"]


async def test_client_errors_are_400_or_422_in_openai_shape(chat_gateway, fake_llm) -> None:
    client = (await chat_gateway()).client
    cases = [
        ({"model": "m", "messages": []}, 400, "messages"),
        ({"model": "m"}, 400, "messages"),
        ({"model": "m", "messages": [{"role": "system", "content": "s"}]}, 400, "messages"),
        (_ask("hi", n=2), 400, "n"),
        (_ask("hi", temperature=5), 422, "temperature"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, 422, None),
        (_ask("hi", genai={"top_k": 0}), 422, "genai.top_k"),
    ]
    malformed = await client.post("/v1/chat/completions", content=b'{"model": "m", "messages": [',
                                  headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["type"] == "invalid_request_error"
    for body, status, param in cases:
        reply = await client.post("/v1/chat/completions", json=body)
        assert reply.status_code == status, (body, reply.text)
        error = reply.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"]
        if param:
            assert error["param"] == param
    assert fake_llm.chat_requests() == []


async def test_oversized_body_is_413_in_openai_shape(chat_gateway, fake_llm) -> None:
    client = (await chat_gateway()).client
    huge = _ask("x" * (16 * 1024 * 1024 + 1))
    declared = await client.post("/v1/chat/completions", json=huge)

    async def chunked():  # no Content-Length: counted as it arrives
        yield json.dumps(huge).encode()

    counted = await client.post("/v1/chat/completions", content=chunked(), headers={"Content-Type": "application/json"})
    for reply in (declared, counted):
        assert reply.status_code == 413, reply.text
        error = reply.json()["error"]
        assert error["type"] == "invalid_request_error" and "larger than" in error["message"]
        assert error["code"] == "body_too_large"
    assert fake_llm.chat_requests() == []


async def test_llm_failures_map_to_gateway_statuses(chat_gateway, fake_llm) -> None:
    client = (await chat_gateway()).client
    cases = ((500, 502, "llm_failed"), (503, 503, "llm_unavailable"), (400, 400, "llm_rejected"),
             (401, 502, "llm_failed"))
    for upstream, expected, code in cases:
        fake_llm.fail_status = upstream
        for stream in (False, True):
            reply = await client.post("/v1/chat/completions", json=_ask("hi", stream=stream))
            assert reply.status_code == expected, (upstream, stream, reply.text)
            assert reply.json()["error"]["message"] and reply.json()["error"]["code"] == code
    fake_llm.fail_status, fake_llm.retry_after = 429, "7"
    reply = await client.post("/v1/chat/completions", json=_ask("hi"))
    assert reply.status_code == 429 and reply.headers["retry-after"] == "7"
    assert (reply.json()["error"]["type"], reply.json()["error"]["code"]) == ("rate_limit_error", "llm_rate_limited")


async def test_llm_failing_mid_stream_ends_the_stream_with_an_error(chat_gateway, fake_llm) -> None:
    fake_llm.break_after = 2
    client = (await chat_gateway()).client
    reply = await client.post("/v1/chat/completions", json=_ask("hi", stream=True))
    assert reply.status_code == 200  # the status was sent with the first token
    events = _sse_events(reply.text)
    assert events[1]["choices"][0]["delta"]["content"] == "Fake "
    assert events[-1]["error"]["type"] == "api_error" and "sources" not in events[-1]
    assert _metric("gateway_chat_requests_total", mode="llm", outcome="upstream_error") >= 1


async def test_llm_connection_dropped_mid_stream_ends_the_stream_with_an_error(chat_gateway, fake_llm) -> None:
    fake_llm.drop_after = 2
    client = (await chat_gateway()).client
    reply = await client.post("/v1/chat/completions", json=_ask("hi", stream=True))
    events = _sse_events(reply.text)  # still a well-formed stream that ends with [DONE]
    assert events[1]["choices"][0]["delta"]["content"] == "Fake "
    assert events[-1]["error"]["message"] and "sources" not in events[-1]


async def test_llm_timeout_is_504_and_unreachable_is_503(chat_gateway, fake_llm) -> None:
    fake_llm.delay = 2.0
    slow = (await chat_gateway(llm_timeout_seconds=0.3)).client
    reply = await slow.post("/v1/chat/completions", json=_ask("hi"))
    assert reply.status_code == 504 and reply.json()["error"]["type"] == "timeout_error"
    gone = (await chat_gateway(llm_base_url=f"http://127.0.0.1:{free_port()}/v1", llm_model="m")).client
    for stream in (False, True):
        reply = await gone.post("/v1/chat/completions", json=_ask("hi", stream=stream))
        assert reply.status_code == 503, reply.text
    assert reply.json()["error"]["type"] == "service_unavailable"


async def test_saturated_llm_answers_429_with_retry_after(chat_gateway, fake_llm) -> None:
    gw = await chat_gateway(llm_max_concurrency=1, llm_max_queue=1)
    client, limiter = gw.client, gw.resources.chat.limiter
    fake_llm.held.set()
    first = asyncio.create_task(client.post("/v1/chat/completions", json=_ask("one")))
    await eventually(lambda: len(fake_llm.chat_requests()), lambda n: n == 1, what="the first chat at the LLM")
    queued = asyncio.create_task(client.post("/v1/chat/completions", json=_ask("two", stream=True)))
    await eventually(lambda: limiter.waiting, lambda n: n == 1, what="the second chat waiting for a slot")
    refused = await client.post("/v1/chat/completions", json=_ask("three"))
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "gateway_overloaded")
    fake_llm.held.clear()
    assert (await first).status_code == 200
    assert (await queued).status_code == 200  # it waited for the slot and got its answer
    assert len(fake_llm.chat_requests()) == 2


async def test_every_chat_log_line_carries_the_request_id(chat_gateway, fake_peers, fake_llm) -> None:
    seen: list[tuple[str, str | None]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), request_id_var.get()))

    client = (await chat_gateway()).client  # started first: start-up lines have no request
    handler = Capture(level=logging.DEBUG)
    logger = logging.getLogger("gateway")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        fake_peers.scraper.behaviour.fail = True
        for stream in (False, True):
            await client.post("/v1/chat/completions", json=_ask(f"see {PAGE_URL}", stream=stream),
                              headers={"X-Request-ID": "req-logs-1"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    assert any("scraper unavailable" in message for message, _ in seen)
    assert any(message == "chat finished" for message, _ in seen)
    assert {request_id for _, request_id in seen} == {"req-logs-1"}
    assert not any(PAGE_URL in message for message, _ in seen)  # the user's text stays out of the logs


async def test_unexpected_error_is_a_500_that_carries_the_request_id(chat_gateway, monkeypatch) -> None:
    seen: list[tuple[str, str | None]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), request_id_var.get()))

    async def broken(_self: ContextGatherer, _request: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ContextGatherer, "gather", broken)
    handler = Capture(level=logging.ERROR)
    logging.getLogger("gateway").addHandler(handler)
    try:
        client = (await chat_gateway()).client
        reply = await client.post("/v1/chat/completions", json=_ask("hi"), headers={"X-Request-ID": "req-bug-1"})
    finally:
        logging.getLogger("gateway").removeHandler(handler)
    assert reply.status_code == 500 and reply.headers["x-request-id"] == "req-bug-1"
    assert reply.json()["error"] == {"message": "internal server error", "type": "api_error", "param": None,
                                     "code": None}
    assert ("unhandled error", "req-bug-1") in seen
