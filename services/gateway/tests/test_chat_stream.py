"""Chat behaviour that needs a real HTTP server: a client that hangs up mid-stream, and the
official `openai` SDK (its streaming helpers included) reading answers and their sources."""

from __future__ import annotations

import asyncio

import httpx
import openai

from tests.fakes.fake_llm import FakeLLM
from tests.fakes.fake_peers import FakePeers
from tests.support.eventually import eventually

PAGE_URL = "https://docs.example/guide"


def _ask(text: str, **extra: object) -> dict[str, object]:
    return {"model": "any", "messages": [{"role": "user", "content": text}], **extra}


async def test_client_disconnect_cuts_the_llm_stream(chat_server, fake_llm: FakeLLM) -> None:
    fake_llm.stream_interval, fake_llm.filler_tokens = 0.05, 2000  # ~100 s if nobody cuts it
    base_url = await chat_server(llm_max_concurrency=1, llm_max_queue=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        async with client.stream("POST", "/v1/chat/completions", json=_ask("talk", stream=True)) as reply:
            assert reply.status_code == 200
            async for line in reply.aiter_lines():
                if '"content":"Fake' in line:
                    break  # the first token arrived: hang up
    assert await asyncio.to_thread(fake_llm.stream_cut.wait, 10), "the gateway kept the LLM stream open"
    assert fake_llm.streams_completed == 0
    # The cut stream gave its LLM slot back: the next chat is served, not refused.
    fake_llm.filler_tokens = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        reply = await client.post("/v1/chat/completions", json=_ask("again", stream=True))
    assert reply.status_code == 200 and reply.text.endswith("data: [DONE]\n\n")


async def test_client_giving_up_cancels_a_waiting_completion(chat_server, fake_llm: FakeLLM) -> None:
    fake_llm.held.set()  # the LLM takes forever
    base_url = await chat_server(llm_max_concurrency=1, llm_max_queue=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        waiting = asyncio.create_task(client.post("/v1/chat/completions", json=_ask("slow one")))
        await eventually(lambda: len(fake_llm.chat_requests()) or waiting.done(), what="the chat at the LLM")
        assert not waiting.done(), waiting
        waiting.cancel()  # the client hangs up
        # The abandoned call gives its LLM slot back, so the next chat reaches the LLM instead of a 429.
        following = asyncio.create_task(client.post("/v1/chat/completions", json=_ask("next")))
        await eventually(lambda: len(fake_llm.chat_requests()) == 2 or following.done(),
                         what="the next chat at the LLM")
        assert not following.done(), following.result().text
        fake_llm.held.clear()
        assert (await following).status_code == 200


def _sdk(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=10)


async def test_openai_sdk_streams_usage_and_sources_on_the_last_chunk(chat_server, fake_peers: FakePeers) -> None:
    fake_peers.scraper.pages[PAGE_URL] = ("Guide", "Calibrate every 30 days.")
    messages = [{"role": "user", "content": f"How often? {PAGE_URL}"}]
    for llm in (True, False):
        client = _sdk(await chat_server(**({} if llm else {"llm_base_url": None})))
        stream = await client.chat.completions.create(model="m", messages=messages, stream=True,
                                                      stream_options={"include_usage": True})
        chunks = [c async for c in stream]
        last = chunks[-1]
        assert last.choices == [] and last.usage is not None, (llm, last)
        assert last.model_extra["sources"][0]["url"] == PAGE_URL and last.model_extra["sources_unavailable"] == []
        assert all(c.usage is None for c in chunks[:-1])
        assert len({c.id for c in chunks}) == 1
        # The SDK's accumulating helper reads the same stream into one completion.
        async with client.chat.completions.stream(model="m", messages=messages) as helper:
            final = await helper.get_final_completion()
        text = final.choices[0].message.content or ""
        assert ("Sources seen: [1]" in text) if llm else ("Calibrate every 30 days." in text)
        assert final.choices[0].finish_reason == "stop"
        await client.close()
