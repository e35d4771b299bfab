"""Tenants on the gateway's side: each key's tenant goes to the retriever with every search (the
documents API and chat retrieval), into `document.uploaded`, and what comes back is kept to the
caller's own documents. The retriever is a fake (tests/fakes, FakeIndex): its own tenant filter
is the retriever's business."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import SecretStr
from test_documents_api import HEADERS, deliver, multipart, progress

from gateway.auth import ApiKeyAuth, read_key_file
from genai.events.v1 import events_pb2

KEYS = "team-a:sk-a-0123456789,team-b:sk-b-0123456789,sk-legacy-0123456789"
A, B, LEGACY = ({"Authorization": f"Bearer {key}"} for key in ("sk-a-0123456789", "sk-b-0123456789",
                                                                 "sk-legacy-0123456789"))


async def test_uploads_searches_and_results_carry_the_callers_tenant(documents_gateway) -> None:
    gw = await documents_gateway(gateway_api_keys=KEYS)
    reply = await gw.client.post("/v1/documents", content=multipart("Team A's notes.", "a.txt"),
                                 headers={**HEADERS, **A})
    assert reply.status_code == 202, reply.text
    doc = reply.json()["id"]
    [message] = await gw.published()
    assert events_pb2.DocumentUploaded.FromString(message.body).tenant == "team-a"
    await deliver(gw, progress(doc, events_pb2.JOB_STATE_SUCCEEDED, 100, chunks=1))
    gw.index.add_hit(doc, "a.txt", "Team A's notes.", 0.9)  # a retriever that would not filter

    found_by_a = await gw.client.post("/v1/search", json={"query": "notes"}, headers=A)
    found_by_b = await gw.client.post("/v1/search", json={"query": "notes"}, headers=B)
    assert [h["document_id"] for h in found_by_a.json()["data"]] == [doc]
    assert found_by_b.status_code == 200 and found_by_b.json()["data"] == []  # never another tenant's
    assert [s.tenant for s in gw.index.searches] == ["team-a", "team-b"]


async def test_a_bare_key_and_no_keys_mean_the_default_tenant(documents_gateway) -> None:
    gw = await documents_gateway(gateway_api_keys=KEYS)
    await gw.client.post("/v1/search", json={"query": "notes"}, headers=LEGACY)
    open_gw = await documents_gateway(gateway_api_keys=[])
    await open_gw.client.post("/v1/search", json={"query": "notes"})
    assert [s.tenant for s in gw.index.searches] == ["default", "default"]


async def test_chat_retrieval_searches_the_callers_tenant(chat_gateway, fake_peers) -> None:
    gw = await chat_gateway(gateway_api_keys=KEYS, llm=False)
    chat = {"model": "m", "messages": [{"role": "user", "content": "what do my notes say?"}]}
    assert (await gw.client.post("/v1/chat/completions", json=chat, headers=B)).status_code == 200
    assert [q.tenant for q in fake_peers.retriever.queries] == ["team-b"]


def test_keys_from_a_file_of_digests(tmp_path) -> None:
    digest = hashlib.sha256(b"sk-from-file").hexdigest()
    path = tmp_path / "keys"
    path.write_text(f"# team keys\n\nteam-c:{digest}\n")
    auth = ApiKeyAuth([SecretStr("team-a:sk-a")], read_key_file(path))
    assert auth.verify("sk-from-file").tenant == "team-c"
    assert auth.verify("sk-a").tenant == "team-a"
    assert auth.verify("sk-a").key_id != auth.verify("sk-from-file").key_id
    path.write_text("team-c:not-a-digest\n")
    with pytest.raises(ValueError, match="line 1"):  # a bad line fails start-up
        read_key_file(path)
