"""RabbitMQ stopped and started during uploads and image jobs, its memory alarm raised, a work
queue at its length limit, against the real gateway, ingest, retriever and imagegen: every request
is answered (202 or 503 with Retry-After) within its deadline, every accepted document is indexed
exactly once with the expected chunk ids (read back from the store), every accepted image job has
exactly n images in the blob store or failed with a reason, and nothing refused is kept.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.broker import PrivateBroker
from tests.faults.gateway_process import gateway, gateway_env, url_of
from tests.faults.platform import (
    IMAGE,
    RetrieverProcess,
    Workers,
    document_effects,
    document_records,
    image_effects,
    image_records,
    upload_text,
)
from tests.faults.tally import Tally
from tests.support.eventually import eventually

pytestmark = pytest.mark.faults

OUTAGES = 10
UPLOADS_PER_OUTAGE = 50
JOBS_PER_OUTAGE = 5
OUTAGE_SECONDS = 5.0
UPLOAD_DEADLINE = 15.0  # every request answered within this
CONSUMERS_BACK_WITHIN = 30.0


def _terminal(records: dict[str, dict], done: set[str]) -> bool:
    return all(r.get("status") in done for r in records.values())


async def _consumers_back(client: httpx.AsyncClient, docs: Tally, jobs: Tally) -> None:
    """A fresh upload reaches `indexed` and a fresh image job `succeeded`."""
    async def probe() -> bool:
        doc, job = await docs.send(lambda: upload_text(client)), await jobs.send(
            lambda: client.post("/v1/jobs/images", json=IMAGE))
        if doc is None or doc.status_code != 202 or job is None or job.status_code != 202:
            return False
        await eventually(lambda: document_records(client, docs.accepted[-1:]),
                         lambda r: _terminal(r, {"indexed"}), within=CONSUMERS_BACK_WITHIN, every=0.2)
        await eventually(lambda: image_records(client, jobs.accepted[-1:]),
                         lambda r: _terminal(r, {"succeeded"}), within=CONSUMERS_BACK_WITHIN, every=0.2)
        return True

    await eventually(probe, within=CONSUMERS_BACK_WITHIN, every=0.5, what="consumers back")


async def _one_outage(client: httpx.AsyncClient, broker: PrivateBroker, docs: Tally, jobs: Tally,
                      delete_id: str) -> int:
    """Uploads and jobs spread over the outage; a DELETE (a database write) in the middle of it."""
    spread = (OUTAGE_SECONDS + 3) / UPLOADS_PER_OUTAGE
    deleted: list[int] = []

    async def later(delay: float, request) -> None:  # type: ignore[no-untyped-def]
        await asyncio.sleep(delay)
        await (docs if request is upload_text else jobs).send(lambda: request(client))

    async def outage() -> None:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(broker.stop_app)
        await asyncio.sleep(OUTAGE_SECONDS / 2)
        reply = await client.delete(f"/v1/documents/{delete_id}")
        deleted.append(reply.status_code)
        await asyncio.sleep(OUTAGE_SECONDS / 2)
        await asyncio.to_thread(broker.start_app)

    def image_job(http: httpx.AsyncClient) -> object:
        return http.post("/v1/jobs/images", json=IMAGE)

    await asyncio.gather(*(later(i * spread, upload_text) for i in range(UPLOADS_PER_OUTAGE)),
                         *(later(i * spread * UPLOADS_PER_OUTAGE / JOBS_PER_OUTAGE, image_job)
                           for i in range(JOBS_PER_OUTAGE)), outage())
    return deleted[0]


async def test_broker_stopped_and_started_during_uploads_and_image_jobs(
        broker: PrivateBroker, workers: Workers, retriever: RetrieverProcess, vhost_url: str, tmp_path: Path) -> None:
    workers.start_ingest()
    workers.start_imagegen()
    env = gateway_env(tmp_path, vhost_url, retriever_addr=retriever.addr)
    docs, jobs = Tally(), Tally()
    back_after: list[float] = []
    deletes: dict[str, int] = {}
    with gateway(env, tmp_path / "gateway.log") as service:
        async with httpx.AsyncClient(base_url=url_of(env), timeout=UPLOAD_DEADLINE) as client:
            await _consumers_back(client, docs, jobs)
            for _ in range(OUTAGES):
                delete_id = docs.accepted[-1]  # indexed: the last probe's
                deletes[delete_id] = await _one_outage(client, broker, docs, jobs, delete_id)
                started = time.monotonic()
                await _consumers_back(client, docs, jobs)
                back_after.append(time.monotonic() - started)
            kept = [d for d in docs.accepted if d not in deletes]
            final_docs = await eventually(lambda: document_records(client, kept),
                                          lambda r: _terminal(r, {"indexed", "failed"}), within=300, every=2,
                                          what="every accepted document indexed")
            final_jobs = await eventually(lambda: image_records(client, jobs.accepted),
                                          lambda r: _terminal(r, {"succeeded", "failed"}), within=300, every=2,
                                          what="every accepted image job finished")
            gone = [(await client.get(f"/v1/documents/{d}")).status_code for d in deletes]
        assert service.process.poll() is None, service.tail()
    lost_docs, duplicated_docs = document_effects(final_docs, retriever)
    lost_jobs, duplicated_jobs, failed_jobs = image_effects(final_jobs, tmp_path / "blobs")
    leftover_vectors = sum(len(retriever.chunk_ids(d)) for d in deletes)
    print(f"\n[broker outage] injected: {OUTAGES} x rabbitmqctl stop_app for {OUTAGE_SECONDS:g} s, each during "
          f"{UPLOADS_PER_OUTAGE} uploads and {JOBS_PER_OUTAGE} image jobs, a DELETE in each outage | "
          f"uploads {docs.summary()} | image jobs {jobs.summary()} | DELETEs during outages: "
          f"{sorted(deletes.values())}, then 404: {gone.count(404)}/{len(gone)}, vectors left: {leftover_vectors} | "
          f"consumers back after {', '.join(f'{s:.1f}' for s in back_after)} s | documents checked in the store: "
          f"{len(final_docs)}, lost: {lost_docs}, duplicated chunks: {duplicated_docs} | image jobs checked in "
          f"the blob store: {len(final_jobs)}, lost: {lost_jobs}, duplicated images: {duplicated_jobs}, "
          f"failed with a reason: {failed_jobs}")
    assert docs.unanswered == jobs.unanswered == 0 and docs.other == jobs.other == []
    assert set(deletes.values()) == {200} and gone == [404] * len(deletes) and leftover_vectors == 0
    assert lost_docs == duplicated_docs == 0 and lost_jobs == duplicated_jobs == 0
    assert max(back_after) < CONSUMERS_BACK_WITHIN


async def test_broker_memory_alarm_answers_503_after_the_publish_deadline(
        broker: PrivateBroker, workers: Workers, retriever: RetrieverProcess, vhost_url: str, tmp_path: Path) -> None:
    workers.start_ingest()
    env = gateway_env(tmp_path, vhost_url, retriever_addr=retriever.addr)
    with gateway(env, tmp_path / "gateway.log"):
        async with httpx.AsyncClient(base_url=url_of(env), timeout=30) as client:
            await asyncio.to_thread(broker.block_publishers)
            try:
                started = time.monotonic()
                blocked = await asyncio.gather(*(upload_text(client) for _ in range(5)))
                blocked_seconds = time.monotonic() - started
            finally:
                await asyncio.to_thread(broker.unblock_publishers)
            after = await eventually(lambda: upload_text(client), lambda r: r.status_code == 202, within=30,
                                     every=0.5, what="an upload accepted after the alarm")
            final = await eventually(lambda: document_records(client, [after.json()["id"]]),
                                     lambda r: _terminal(r, {"indexed", "failed"}), within=60)
            listed = (await client.get("/v1/documents")).json()["data"]
    lost, duplicated = document_effects(final, retriever)
    codes = sorted({r.status_code for r in blocked})
    print(f"\n[memory alarm] injected: set_vm_memory_high_watermark absolute 1 (publishers blocked) | "
          f"5 uploads answered {codes} with Retry-After {sorted({r.headers.get('retry-after') for r in blocked})} "
          f"within {blocked_seconds:.1f} s (publish deadline 2 s) | after: 202, lost: {lost}, duplicated: "
          f"{duplicated} | kept: {len(listed)}")
    assert codes == [503] and all(r.json()["error"]["code"] == "broker_busy" for r in blocked)
    assert [d["id"] for d in listed] == [after.json()["id"]]  # the refused uploads left nothing
    assert lost == duplicated == 0


async def test_a_queue_at_its_length_limit_refuses_uploads_then_recovers_when_drained(
        workers: Workers, retriever: RetrieverProcess, vhost_url: str, tmp_path: Path) -> None:
    limit = 5
    workers.overrides["INGEST_QUEUE_MAX_LENGTH"] = str(limit)
    assert workers.start_ingest().terminate() == 0  # the queue declared, nobody consuming
    env = gateway_env(tmp_path, vhost_url, retriever_addr=retriever.addr)
    with gateway(env, tmp_path / "gateway.log"):
        async with httpx.AsyncClient(base_url=url_of(env), timeout=30) as client:
            replies = [await upload_text(client) for _ in range(limit + 5)]
            accepted = [r.json()["id"] for r in replies if r.status_code == 202]
            refused = [r for r in replies if r.status_code == 503]
            workers.start_ingest()  # drained
            final = await eventually(lambda: document_records(client, accepted),
                                     lambda r: _terminal(r, {"indexed", "failed"}), within=60,
                                     what="the accepted documents indexed")
            after = await eventually(lambda: upload_text(client), lambda r: r.status_code == 202, within=30,
                                     what="an upload accepted once drained")
            listed = {d["id"] for d in (await client.get("/v1/documents")).json()["data"]}
    lost, duplicated = document_effects(final, retriever)
    print(f"\n[queue limit] injected: x-max-length {limit} (reject-publish), consumer stopped, {limit + 5} uploads | "
          f"202: {len(accepted)}, 503 queue_full: {len(refused)} | after draining: 202 | "
          f"lost: {lost}, duplicated: {duplicated}")
    assert len(accepted) in (limit, limit + 1) and len(accepted) + len(refused) == limit + 5
    assert all(r.json()["error"]["code"] == "queue_full" and r.headers["retry-after"] for r in refused)
    assert listed == {*accepted, after.json()["id"]}
    assert lost == duplicated == 0
