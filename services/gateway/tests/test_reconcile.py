"""The reconciliation sweep: records stuck in a non-terminal state are published again or failed
with a reason, dead-lettered progress events are applied, and event streams end.

The sweep is given the time it runs at (`now`), a deadline past the records' last update,
instead of the tests waiting for deadlines to pass.
"""

from __future__ import annotations

from datetime import timedelta

import aio_pika
import httpx
from test_documents_upload import HEADERS, multipart, tiny_pdf
from test_jobs_events import IMAGE, EventReader

from gateway.clock import utcnow
from gateway.consumer import PROGRESS_QUEUE_NAME
from genai.events.v1 import events_pb2
from tests.support.eventually import eventually

QUEUED, RUNNING, GIVE_UP = 60.0, 120.0, 600.0
DEADLINES = {"gateway_sweep_queued_seconds": QUEUED, "gateway_sweep_running_seconds": RUNNING,
             "gateway_sweep_give_up_seconds": GIVE_UP}


def later(seconds: float):
    return utcnow() + timedelta(seconds=seconds)


async def test_a_document_nobody_picked_up_is_published_again_then_failed_after_the_give_up_deadline(
        documents_gateway) -> None:
    gw = await documents_gateway(**DEADLINES)
    document_id = (await gw.client.post("/v1/documents", content=multipart(tiny_pdf()), headers=HEADERS)).json()["id"]
    assert [m.message_id for m in await gw.published()] == [document_id]
    sweeper = gw.resources.reconciler

    assert (await sweeper.sweep(now=later(QUEUED / 2))).republished == 0  # not stalled yet
    report = await sweeper.sweep(now=later(QUEUED + 1))
    assert report.republished == 1
    assert [m.message_id for m in await gw.published()] == [document_id]  # the same event, again
    assert (await sweeper.sweep(now=later(QUEUED + 1))).republished == 0  # claimed: once per deadline

    report = await sweeper.sweep(now=later(GIVE_UP + QUEUED + 1))
    assert report.failed == 1 and await gw.published() == []
    document = (await gw.client.get(f"/v1/documents/{document_id}")).json()
    assert document["status"] == "failed" and "not picked up" in document["reason"]


async def test_a_document_whose_worker_stopped_reporting_is_failed_with_the_reason(documents_gateway) -> None:
    gw = await documents_gateway(**DEADLINES)
    document_id = (await gw.client.post("/v1/documents", content=multipart(tiny_pdf()), headers=HEADERS)).json()["id"]
    await gw.resources.progress.dispatch(events_pb2.JobProgress(
        kind=events_pb2.JOB_KIND_DOCUMENT, job_id=document_id, state=events_pb2.JOB_STATE_RUNNING, progress=40))
    report = await gw.resources.reconciler.sweep(now=later(RUNNING + 1))
    assert report.failed == 1
    document = (await gw.client.get(f"/v1/documents/{document_id}")).json()
    assert document["status"] == "failed" and "no progress reported" in document["reason"]


async def test_dead_lettered_progress_events_are_applied_by_the_sweep(documents_gateway, rabbit_url) -> None:
    gw = await documents_gateway(**DEADLINES)
    document_id = (await gw.client.post("/v1/documents", content=multipart(tiny_pdf()), headers=HEADERS)).json()["id"]
    event = events_pb2.JobProgress(kind=events_pb2.JOB_KIND_DOCUMENT, job_id=document_id,
                                   state=events_pb2.JOB_STATE_SUCCEEDED, progress=100, pages=1, chunks=2)
    async with await aio_pika.connect(rabbit_url) as connection:  # as the consumer's give-up left it
        channel = await connection.channel(publisher_confirms=True)
        await channel.default_exchange.publish(
            aio_pika.Message(event.SerializeToString(), type=event.DESCRIPTOR.full_name), f"{PROGRESS_QUEUE_NAME}.dlq")
    report = await eventually(gw.resources.reconciler.sweep, lambda r: r.replayed >= 1, within=10,
                              what="the dead-lettered event replayed")
    assert report.failed == 0 and report.republished == 0
    document = (await gw.client.get(f"/v1/documents/{document_id}")).json()
    assert document["status"] == "indexed" and document["chunks"] == 2


async def test_a_stuck_image_job_is_republished_then_failed_and_its_event_stream_ends(jobs_gateway) -> None:
    gw = await jobs_gateway(**DEADLINES)
    async with httpx.AsyncClient(base_url=await gw.serve(), timeout=30) as http:
        job_id = (await http.post("/v1/jobs/images", json=IMAGE)).json()["id"]
        assert [r.job_id for r in await gw.worker.requests()] == [job_id]
        reader = EventReader(http, f"/v1/jobs/{job_id}/events")
        await reader.until(lambda r: r.events)
        assert (await gw.resources.reconciler.sweep(now=later(QUEUED + 1))).republished == 1
        assert [r.job_id for r in await gw.worker.requests()] == [job_id]
        await gw.worker.report(job_id, events_pb2.JOB_STATE_RUNNING, 30, stage="denoising")
        await reader.until(lambda r: r.events[-1][1]["progress"] == 30)
        # Its worker died and nothing redelivered it: the sweep fails it, the stream ends.
        assert (await gw.resources.reconciler.sweep(now=later(RUNNING + 1))).failed == 1
        await reader.finished()
    name, data = reader.events[-1]
    assert name == "failed" and "no progress reported" in data["error"]["message"]
