"""The jobs feature's AMQP edge: job requests and cancels out, `job.progress` in (protobuf <-> domain)."""

from __future__ import annotations

import logging

from genai.events.v1 import events_pb2
from genai_common.amqp import Amqp, IMAGE_JOB_REQUESTED, JOB_CANCEL_REQUESTED, TEXT_JOB_REQUESTED
from gateway.jobs.models import Job, Status, Update
from gateway.jobs.service import JobService

log = logging.getLogger(__name__)


_STATUS = {
    events_pb2.JOB_STATE_RUNNING: Status.RUNNING,
    events_pb2.JOB_STATE_SUCCEEDED: Status.SUCCEEDED,
    events_pb2.JOB_STATE_FAILED: Status.FAILED,
    events_pb2.JOB_STATE_CANCELLED: Status.CANCELLED,
}


class AmqpJobPublisher:
    """Confirmed, persistent publishes; raises Unavailable when the broker does not take one."""

    def __init__(self, amqp: Amqp) -> None:
        self._amqp = amqp

    async def image_job(self, job: Job) -> None:
        p = job.params
        event = events_pb2.ImageJobRequested(
            job_id=job.id, prompt=p["prompt"], negative_prompt=p["negative_prompt"], n=p["n"], width=p["width"],
            height=p["height"], steps=p["steps"], guidance=p["guidance"], seed=p["seed"],
        )
        await self._amqp.publish(IMAGE_JOB_REQUESTED, event, message_id=job.id, headers={"job_id": job.id})

    async def text_job(self, job: Job) -> None:
        p = job.params
        event = events_pb2.TextJobRequested(
            job_id=job.id, prompt=p["prompt"], max_tokens=p["max_tokens"], temperature=p["temperature"])
        await self._amqp.publish(TEXT_JOB_REQUESTED, event, message_id=job.id, headers={"job_id": job.id})

    async def cancel(self, job_id: str) -> None:
        await self._amqp.publish(JOB_CANCEL_REQUESTED, events_pb2.JobCancelRequested(job_id=job_id), headers={"job_id": job_id})


def update_from_event(event: events_pb2.JobProgress) -> Update | None:
    status = _STATUS.get(event.state)
    if status is None:
        return None
    return Update(
        job_id=event.job_id, status=status, progress=event.progress, stage=event.stage, reason=event.reason,
        result_keys=tuple(event.result_keys), output_text=event.output_text or None,
        stage_seconds=dict(event.stage_seconds),
    )


class ProgressApplier:
    """Registered with the gateway's ProgressDispatcher for image and text jobs."""

    def __init__(self, service: JobService) -> None:
        self._service = service

    async def __call__(self, event: events_pb2.JobProgress) -> None:
        change = update_from_event(event)
        if change is None or not change.job_id:
            return
        if not await self._service.apply(change):
            log.debug("job update not applied (unknown job, or not a step forward)",
                      extra={"job_id": change.job_id, "state": change.status.value})
