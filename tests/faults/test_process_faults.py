"""The gateway process stopped under load: SIGTERM with requests in flight and event streams
open (a rolling update), and SIGKILL at random points during uploads (a crash), ten times, with
the real ingest and retriever behind it (SIGKILL of the workers: test_worker_faults).
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from pathlib import Path

import httpx
import pytest

from genai_common.amqp import IMAGE_JOB_REQUESTED, Amqp, QueueSpec
from tests.fakes.fake_llm import FakeLLM
from tests.faults.gateway_process import gateway_env, start_gateway, url_of
from tests.faults.platform import RetrieverProcess, Workers, document_effects, document_records, upload_text
from tests.support.eventually import eventually

pytestmark = pytest.mark.faults

GRACE = 10.0
CHATS, STREAMS = 50, 20
KILLS, UPLOADS_PER_KILL = 10, 30
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "Say something."}], "genai": {"rag": False}}
IMAGE = {"prompt": "a lighthouse", "n": 1, "size": "64x64", "steps": 1}


async def _last_event(client: httpx.AsyncClient, job_id: str, opened: asyncio.Event) -> list[str]:
    names = []
    async with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                names.append(line.removeprefix("event: "))
                opened.set()
    return names


async def test_sigterm_with_requests_in_flight_and_streams_open(vhost_url: str, tmp_path: Path) -> None:
    async with Amqp(vhost_url, name="fake-imagegen") as imagegen:  # image jobs have a queue to go to
        await imagegen.declare_queue(QueueSpec("imagegen.image-jobs", (IMAGE_JOB_REQUESTED,)))
    with FakeLLM() as llm:
        llm.held.set()  # every chat waits at the LLM until released
        env = gateway_env(tmp_path, vhost_url, llm_base_url=llm.base_url, llm_model="fake-model",
                          shutdown_grace_seconds=GRACE)
        service = start_gateway(env, tmp_path / "gateway.log")
        try:
            async with httpx.AsyncClient(base_url=url_of(env), timeout=60) as client:
                job_ids = [(await client.post("/v1/jobs/images", json=IMAGE)).json()["id"] for _ in range(STREAMS)]
                opened = [asyncio.Event() for _ in job_ids]
                streams = [asyncio.create_task(_last_event(client, j, o)) for j, o in zip(job_ids, opened, strict=True)]
                for event in opened:
                    await asyncio.wait_for(event.wait(), 30)
                chats = [asyncio.create_task(client.post("/v1/chat/completions", json=CHAT)) for _ in range(CHATS)]
                await eventually(lambda: len(llm.chat_requests()), lambda n: n >= CHATS, within=30,
                                 what="every chat in flight at the LLM")
                service.process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                await asyncio.sleep(1.0)  # the chats are still in flight when they are released
                llm.held.clear()
                answers = await asyncio.gather(*chats, return_exceptions=True)
                endings = await asyncio.gather(*streams, return_exceptions=True)
                code = await asyncio.to_thread(service.process.wait, GRACE + 10)
                exited = time.monotonic() - signalled
        finally:
            llm.held.clear()
            service.terminate()
    completed = sum(1 for a in answers if isinstance(a, httpx.Response) and a.status_code == 200)
    reconnect = sum(1 for e in endings if isinstance(e, list) and e[-1:] == ["reconnect"])
    print(f"\n[SIGTERM] injected: SIGTERM with {CHATS} chats in flight and {STREAMS} job event streams open | "
          f"chats completed 200: {completed}/{CHATS} | streams ended with `reconnect`: {reconnect}/{STREAMS} | "
          f"exit code {code} after {exited:.1f} s (grace {GRACE:g} s)")
    assert completed == CHATS, [a if not isinstance(a, httpx.Response) else a.status_code for a in answers][:5]
    assert reconnect == STREAMS, endings[:3]
    # uvicorn re-raises the signal once it has shut down cleanly: exit by SIGTERM (143 in a pod).
    assert code in (0, -signal.SIGTERM) and exited < GRACE


async def _uploads_until_killed(client: httpx.AsyncClient, service_kill, rng: random.Random) -> list[object]:
    async def one(delay: float) -> object:
        await asyncio.sleep(delay)
        try:
            return await upload_text(client)
        except httpx.TransportError:  # the connection died with the process: not acknowledged
            return "dropped"

    async def kill() -> None:
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        service_kill()

    replies, _ = await asyncio.gather(asyncio.gather(*(one(i * 0.06) for i in range(UPLOADS_PER_KILL))), kill())
    return list(replies)


async def test_sigkill_of_the_gateway_during_uploads(workers: Workers, retriever: RetrieverProcess, vhost_url: str,
                                                     tmp_path: Path) -> None:
    rng = random.Random(13)
    workers.start_ingest()
    env = gateway_env(tmp_path, vhost_url, retriever_addr=retriever.addr, gateway_sweep_queued_seconds=20)
    accepted: list[str] = []
    dropped = refused = 0
    for _ in range(KILLS):
        service = start_gateway(env, tmp_path / "gateway.log")
        async with httpx.AsyncClient(base_url=url_of(env), timeout=15) as client:
            for reply in await _uploads_until_killed(client, service.kill, rng):
                if reply == "dropped":
                    dropped += 1
                elif isinstance(reply, httpx.Response) and reply.status_code == 202:
                    accepted.append(reply.json()["id"])
                else:
                    refused += 1
    service = start_gateway(env, tmp_path / "gateway.log")
    try:
        async with httpx.AsyncClient(base_url=url_of(env), timeout=15) as client:
            async def visible() -> dict[str, dict]:
                found: list[str] = []
                params: dict[str, object] = {"limit": 100}
                while True:
                    page = (await client.get("/v1/documents", params=params)).json()
                    found += [d["id"] for d in page["data"]]
                    if not page["has_more"]:
                        return await document_records(client, found)
                    params["after"] = page["data"][-1]["id"]

            # A record the kill caught between its commit and its publish waits for the sweep
            # (GATEWAY_SWEEP_QUEUED_SECONDS, 20 s here), which publishes it again.
            final = await eventually(visible, lambda v: {d["status"] for d in v.values()} <= {"indexed"}
                                     and set(accepted) <= set(v), within=120, every=1,
                                     what="every visible document indexed")
    finally:
        service.terminate()
    lost = len(set(accepted) - {d for d, r in final.items() if r["status"] == "indexed"})
    stored_lost, duplicated = document_effects(final, retriever)
    print(f"\n[SIGKILL gateway] injected: {KILLS} x SIGKILL at a random point during {UPLOADS_PER_KILL} uploads | "
          f"202: {len(accepted)}, connection dropped (not acknowledged): {dropped}, other: {refused} | "
          f"visible afterwards: {len(final)}, all indexed, checked in the store | lost: {lost + stored_lost}, "
          f"duplicated chunks: {duplicated}, stuck: {sum(r['status'] != 'indexed' for r in final.values())}")
    assert lost == stored_lost == duplicated == 0
    assert json.dumps(sorted({r["status"] for r in final.values()})) == '["indexed"]'
