"""What an answer is built from, through the real app (ASGITransport), the real peers.py clients
against in-process gRPC fakes, and FakeLLM: content parts, long pages quoted by their matching
sentences in retrieval-only mode, pages that could not be read, long questions, bounded chats."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.fakes.fake_peers import FakePeers
from tests.support.eventually import eventually

PAGE_URL = "https://docs.example/guide"
PASSAGE = "Section 4: calibration uses the blue knob."


def _ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "any", "messages": [{"role": "user", "content": text}], **extra}


def _seed(peers: FakePeers) -> None:
    peers.scraper.pages[PAGE_URL] = ("Frobnicator guide", "The frobnicator must be calibrated every 30 days.")
    peers.retriever.add_hit("doc-7", "manual.pdf", 4, PASSAGE, 0.83)


def _streamed_text(sse: str) -> str:
    events = [json.loads(line.removeprefix("data: ")) for line in sse.split("\n\n")
              if line.startswith("data: ") and line != "data: [DONE]"]
    return "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])


async def test_content_parts_are_read_for_urls_and_passed_on_unchanged(chat_gateway, fake_peers, fake_llm) -> None:
    _seed(fake_peers)
    client = (await chat_gateway()).client
    parts = [{"type": "text", "text": "How often to calibrate?"},
             {"type": "text", "text": f"Source: [guide]({PAGE_URL})"}]
    body = {"model": "m", "messages": [{"role": "user", "content": parts}]}
    reply = await client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    assert [s["kind"] for s in reply.json()["sources"]] == ["url", "document"]
    assert fake_peers.scraper.requests == [[PAGE_URL]]
    (sent,) = fake_llm.chat_requests()
    assert sent.messages[-1] == {"role": "user", "content": parts}


HIDDEN = "The blue knob must be turned clockwise during calibration, never anticlockwise."
HARBOUR = " ".join(f"Note {i}: the harbour office keeps its logbook on the second floor." for i in range(400))


async def test_retrieval_only_quotes_the_matching_sentences_of_a_long_page(chat_gateway, fake_peers) -> None:
    # The sentence the user asks about sits far past the start of a long page (and past the
    # characters a prompt would take from it): the answer still quotes it, and the document.
    fake_peers.scraper.pages[PAGE_URL] = ("Frobnicator guide", f"{HARBOUR} {HIDDEN} {HARBOUR}")
    fake_peers.retriever.add_hit("doc-7", "manual.pdf", 4, PASSAGE, 0.83)
    client = (await chat_gateway(llm=False)).client
    question = f"Which way is the blue knob turned during calibration? {PAGE_URL}"
    for stream in (False, True):
        reply = await client.post("/v1/chat/completions", json=_ask(question, stream=stream))
        if stream:
            content = _streamed_text(reply.text)
        else:
            content = reply.json()["choices"][0]["message"]["content"]
        assert HIDDEN in content and PASSAGE in content
        assert len(content) < 4000  # quoted, not the whole page


async def test_a_page_that_could_not_be_read_is_named_to_the_model_and_the_user(chat_gateway, fake_llm) -> None:
    missing = "https://missing.example/x"
    client = (await chat_gateway()).client
    reply = await client.post("/v1/chat/completions", json=_ask(f"Summarise {missing}", genai={"rag": False}))
    assert reply.json()["sources"] == []
    (sent,) = fake_llm.chat_requests()
    assert f"{missing} (http error)" in sent.messages[0]["content"]  # the model is told, and can say so
    retrieval_only = (await chat_gateway(llm=False)).client
    reply = await retrieval_only.post("/v1/chat/completions", json=_ask(f"Summarise {missing}", genai={"rag": False}))
    content = reply.json()["choices"][0]["message"]["content"]
    assert "could not be read" in content and f"{missing} (http error)" in content


async def test_a_long_question_still_searches_the_documents(chat_gateway, fake_peers, fake_llm) -> None:
    _seed(fake_peers)
    client = (await chat_gateway()).client
    question = "Here is my log: " + "line ok; " * 800 + "How often to calibrate?"
    answer = (await client.post("/v1/chat/completions", json=_ask(question))).json()
    assert answer["sources_unavailable"] == []
    assert [s["kind"] for s in answer["sources"]] == ["document"]


async def test_retrieval_only_chats_are_bounded_too(chat_gateway, fake_peers) -> None:
    fake_peers.retriever.add_hit("doc-1", "a.pdf", 1, PASSAGE, 0.5)
    fake_peers.retriever.behaviour.hang = True
    # Its own limit, not the LLM's: one retrieval-only chat runs, one waits, the third is refused.
    gw = await chat_gateway(llm=False, gateway_retrieval_only_max_concurrency=1, llm_max_concurrency=50)
    client, limiter = gw.client, gw.resources.chat.limiter
    first = asyncio.create_task(client.post("/v1/chat/completions", json=_ask("one")))
    await eventually(lambda: fake_peers.retriever.behaviour.calls, lambda n: n == 1, what="the first search")
    second = asyncio.create_task(client.post("/v1/chat/completions", json=_ask("two")))
    await eventually(lambda: limiter.waiting, lambda n: n == 1, what="the second chat waiting for a slot")
    refused = await client.post("/v1/chat/completions", json=_ask("three"))
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert not first.done()
    fake_peers.release()
    for answered in (await first, await second):
        answer = answered.json()
        assert answer["sources_unavailable"] == [] and PASSAGE in answer["choices"][0]["message"]["content"]
