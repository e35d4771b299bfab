"""The gateway's metrics, read from /metrics as Prometheus reads them: every series exists before
its first event, probes are not timed, and chats, LLM calls, backends, jobs and documents are
counted the way the dashboards and alerts read them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.fake_llm import FakeLLM
from tests.fakes.fake_peers import FakePeers
from tests.support.eventually import eventually

PAGE_URL = "https://docs.example/guide"


async def _samples(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    reply = await client.get("/metrics")
    assert reply.status_code == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(reply.text) for s in family.samples}


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "any", "messages": [{"role": "user", "content": text}], **extra}


async def test_every_series_exists_before_its_first_event(chat_gateway) -> None:
    samples = await _samples((await chat_gateway()).client)
    names = {(name, labels) for name, labels in samples}
    for mode in ("llm", "retrieval_only"):
        for outcome in ("ok", "client_error", "rejected", "upstream_error", "cancelled", "error"):
            assert ("gateway_chat_requests_total", frozenset({("mode", mode), ("outcome", outcome)})) in names
    for stream in ("true", "false"):
        assert ("gateway_llm_requests_total", frozenset({("stream", stream), ("outcome", "failed")})) in names
    for backend in ("scraper", "retriever"):
        assert ("gateway_backend_request_duration_seconds_count",
                frozenset({("backend", backend), ("outcome", "timeout")})) in names
    chat_5xx = frozenset({("method", "POST"), ("route", "/v1/chat/completions"), ("status_class", "5xx")})
    assert ("gateway_http_request_duration_seconds_count", chat_5xx) in names
    assert ("gateway_documents", frozenset({("status", "processing")})) in names
    assert ("gateway_job_oldest_age_seconds", frozenset({("kind", "image"), ("status", "queued")})) in names


async def test_probes_are_not_timed_and_paths_are_labelled_by_route(chat_gateway) -> None:
    client = (await chat_gateway()).client
    before = await _samples(client)
    for path in ("/healthz", "/readyz", "/metrics"):
        await client.get(path)
    await client.request("BREW", "/v1/coffee")
    await client.get("/v1/nowhere")
    await client.get("/console/console.css")
    samples = await _samples(client)
    routes = {dict(labels).get("route") for name, labels in samples if name.startswith("gateway_http_")}
    assert not routes & {"/healthz", "/readyz", "/metrics"}
    methods = {dict(labels).get("method") for name, labels in samples if name.startswith("gateway_http_")}
    assert "BREW" not in methods

    def grew(**labels: str) -> float:
        name = "gateway_http_request_duration_seconds_count"
        return _value(samples, name, **labels) - _value(before, name, **labels)

    assert grew(method="other", route="unmatched", status_class="4xx") == 1
    assert grew(method="GET", route="unmatched", status_class="4xx") == 1
    assert grew(method="GET", route="/console", status_class="2xx") == 1  # the console's files, by their mount


async def test_a_chat_counts_its_llm_call_tokens_and_sources(chat_gateway, fake_peers: FakePeers,
                                                             fake_llm: FakeLLM) -> None:
    fake_peers.scraper.pages[PAGE_URL] = ("Guide", "Calibrate every 30 days.")
    fake_peers.retriever.add_hit("doc-1", "manual.pdf", 1, "Use the blue knob.", 0.8)
    client = (await chat_gateway()).client
    before = await _samples(client)
    assert (await client.post("/v1/chat/completions", json=_ask(f"See {PAGE_URL}"))).status_code == 200
    streamed = await client.post("/v1/chat/completions", json=_ask(f"See {PAGE_URL}", stream=True))
    after = await _samples(client)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("gateway_llm_requests_total", stream="false", outcome="ok") == 1
    assert grew("gateway_llm_requests_total", stream="true", outcome="ok") == 1
    assert grew("gateway_llm_time_to_first_token_seconds_count") == 1
    assert grew("gateway_llm_tokens_total", kind="prompt") == 20  # FakeLLM reports 10 a call
    assert grew("gateway_llm_tokens_total", kind="completion") > 0
    assert grew("gateway_chat_answer_sources_count", mode="llm") == 2
    assert grew("gateway_chat_answer_sources_sum", mode="llm") == 4
    assert grew("gateway_chat_answers_without_sources_total", mode="llm") == 0
    assert grew("gateway_backend_request_duration_seconds_count", backend="scraper", outcome="ok") == 2
    assert grew("gateway_backend_request_duration_seconds_count", backend="retriever", outcome="ok") == 2
    # Usage was asked of the LLM for the counting; the client did not ask for it and gets none.
    events = [json.loads(line[6:]) for line in streamed.text.split("\n\n") if line.startswith("data: {")]
    assert not any("usage" in event for event in events)
    assert fake_llm.chat_requests()[-1].body["stream_options"] == {"include_usage": True}


async def test_a_failing_llm_is_counted_by_outcome_and_a_chat_without_sources_is_seen(
        chat_gateway, fake_peers: FakePeers, fake_llm: FakeLLM) -> None:
    client = (await chat_gateway()).client
    before = await _samples(client)
    assert (await client.post("/v1/chat/completions", json=_ask("Hello"))).status_code == 200  # nothing to cite
    fake_llm.fail_status = 500
    for stream in (False, True):
        assert (await client.post("/v1/chat/completions", json=_ask("Hello", stream=stream))).status_code == 502
    fake_llm.fail_status = 503
    assert (await client.post("/v1/chat/completions", json=_ask("Hello"))).status_code == 503
    after = await _samples(client)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("gateway_chat_answers_without_sources_total", mode="llm") == 1
    assert grew("gateway_llm_requests_total", stream="false", outcome="failed") == 1
    assert grew("gateway_llm_requests_total", stream="true", outcome="failed") == 1
    assert grew("gateway_llm_requests_total", stream="false", outcome="unavailable") == 1
    assert grew("gateway_chat_requests_total", mode="llm", outcome="upstream_error") == 3
    assert grew("gateway_http_request_duration_seconds_count", method="POST", route="/v1/chat/completions",
                status_class="5xx") == 3


async def test_a_slow_backend_is_counted_as_a_timeout(chat_gateway, fake_peers: FakePeers, fake_llm: FakeLLM) -> None:
    fake_peers.retriever.behaviour.hang = True
    client = (await chat_gateway(gateway_retrieve_deadline_seconds=0.3)).client
    before = await _samples(client)
    assert (await client.post("/v1/chat/completions", json=_ask("What do my documents say?"))).status_code == 200
    after = await _samples(client)
    key = {"backend": "retriever", "outcome": "timeout"}
    assert (_value(after, "gateway_backend_request_duration_seconds_count", **key)
            - _value(before, "gateway_backend_request_duration_seconds_count", **key)) == 1


async def test_chats_in_flight_and_queued_are_gauged(chat_gateway, fake_llm: FakeLLM) -> None:
    client = (await chat_gateway(llm_max_concurrency=1, llm_max_queue=2)).client
    fake_llm.held.set()
    chats = [asyncio.create_task(client.post("/v1/chat/completions", json=_ask("Hello"))) for _ in range(3)]

    async def gauges() -> tuple[float, float]:
        samples = await _samples(client)
        return _value(samples, "gateway_chats_in_flight"), _value(samples, "gateway_chats_queued")

    await eventually(gauges, lambda g: g == (1, 2), what="one chat in flight and two queued")
    fake_llm.held.clear()
    await asyncio.gather(*chats)
    assert await gauges() == (0, 0)


async def test_jobs_and_documents_are_counted_by_status_with_the_oldest_age(jobs_gateway) -> None:
    gw = await jobs_gateway(gateway_stats_interval_seconds=0.1)
    reply = await gw.client.post("/v1/jobs/images", json={"prompt": "a lighthouse", "size": "64x64"})
    assert reply.status_code == 202
    job = reply.json()["id"]

    async def queued() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return await _samples(gw.client)

    samples = await eventually(queued, lambda s: _value(s, "gateway_jobs", kind="image", status="queued") == 1,
                               what="the queued job counted")
    assert _value(samples, "gateway_jobs", kind="text", status="queued") == 0
    await eventually(queued, lambda s: _value(s, "gateway_job_oldest_age_seconds", kind="image", status="queued") > 0,
                     what="the queued job's age")
    assert (await gw.client.delete(f"/v1/jobs/{job}")).status_code == 200
    samples = await eventually(queued, lambda s: _value(s, "gateway_jobs", kind="image", status="cancelled") == 1,
                               what="the cancelled job counted")
    assert _value(samples, "gateway_jobs", kind="image", status="queued") == 0
    assert _value(samples, "gateway_job_oldest_age_seconds", kind="image", status="queued") == 0
    assert _value(samples, "gateway_documents", status="indexed") == 0
    # The image job's event carries its submission time: imagegen measures the queue wait from it.
    (published,) = await gw.worker.requests()
    assert published.job_id == job and abs(published.submitted_at.seconds - reply.json()["created_at"]) <= 1
