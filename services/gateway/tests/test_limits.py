"""Per-key limits and process-wide caps through the real app: refusals are 429 (the caller's
quota) or 503 (this server is full), in the OpenAI error shape, with an honest Retry-After; one
key at its limit leaves other keys alone."""

from __future__ import annotations

import asyncio

from tests.support.eventually import eventually

KEYS = "team-a:sk-a-0123456789,team-b:sk-b-0123456789"
A = {"Authorization": "Bearer sk-a-0123456789"}
B = {"Authorization": "Bearer sk-b-0123456789"}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "what do my notes say?"}],
        "genai": {"rag": True, "scrape": False}}


async def test_a_key_over_its_requests_per_minute_waits_as_told_and_others_do_not(chat_gateway) -> None:
    client = (await chat_gateway(gateway_api_keys=KEYS, gateway_key_requests_per_minute=3)).client
    assert [(await client.get("/v1/models", headers=A)).status_code for _ in range(3)] == [200] * 3
    refused = await client.get("/v1/models", headers=A)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    # 3 a minute: the next token is back in about 20 s, and that is what the client is told.
    wait_ms = int(refused.headers["retry-after-ms"])
    assert 15_000 < wait_ms <= 20_000 and int(refused.headers["Retry-After"]) == -(-wait_ms // 1000)
    assert [(await client.get("/v1/models", headers=B)).status_code for _ in range(3)] == [200] * 3
    assert (await client.get("/healthz")).status_code == 200  # probes are never limited


async def test_chats_in_flight_per_key_and_the_process_cap(chat_gateway, fake_peers) -> None:
    gw = await chat_gateway(gateway_api_keys=KEYS, llm=False, gateway_key_max_chats=1, gateway_max_in_flight=2,
                            gateway_retrieve_deadline_seconds=30)
    fake_peers.retriever.behaviour.hang = True
    first = asyncio.create_task(gw.client.post("/v1/chat/completions", json=CHAT, headers=A))
    await eventually(lambda: fake_peers.retriever.behaviour.calls == 1, within=10, what="first chat in flight")
    second = await gw.client.post("/v1/chat/completions", json=CHAT, headers=A)
    assert second.status_code == 429 and second.json()["error"]["code"] == "concurrency_limit_exceeded"
    assert "Retry-After" in second.headers
    other = asyncio.create_task(gw.client.post("/v1/chat/completions", json=CHAT, headers=B))
    await eventually(lambda: fake_peers.retriever.behaviour.calls == 2, within=10, what="B's chat in flight")
    # Two requests in flight is this process's cap: the next is shed at once, whoever sends it.
    shed = await gw.client.get("/v1/models", headers=B)
    assert shed.status_code == 503 and shed.json()["error"]["code"] == "overloaded"
    assert int(shed.headers["retry-after-ms"]) > 0 and int(shed.headers["Retry-After"]) >= 1
    assert (await gw.client.get("/healthz")).status_code == 200
    fake_peers.release()
    assert [(await first).status_code, (await other).status_code] == [200, 200]
    assert (await gw.client.post("/v1/chat/completions", json=CHAT, headers=A)).status_code == 200
