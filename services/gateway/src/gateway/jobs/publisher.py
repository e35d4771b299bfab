"""The jobs feature's AMQP edge out: job requests and cancels (domain -> protobuf), confirmed.

Progress comes back on `job.progress`, read by the gateway's one consumer (`gateway.consumer`).
"""

from __future__ import annotations

from gateway.jobs.domain import Job
from genai.events.v1 import events_pb2
from genai_common.amqp import IMAGE_JOB_REQUESTED, JOB_CANCEL_REQUESTED, TEXT_JOB_REQUESTED, Amqp


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
        event.submitted_at.FromDatetime(job.created_at)  # a moment without a zone is UTC (SQLite)
        await self._amqp.publish(IMAGE_JOB_REQUESTED, event, message_id=job.id, headers={"job_id": job.id})

    async def text_job(self, job: Job) -> None:
        p = job.params
        event = events_pb2.TextJobRequested(
            job_id=job.id, prompt=p["prompt"], max_tokens=p["max_tokens"], temperature=p["temperature"])
        await self._amqp.publish(TEXT_JOB_REQUESTED, event, message_id=job.id, headers={"job_id": job.id})

    async def cancel(self, job_id: str) -> None:
        await self._amqp.publish(JOB_CANCEL_REQUESTED, events_pb2.JobCancelRequested(job_id=job_id),
                                 headers={"job_id": job_id})
