"""The AMQP edge: `image.job.requested` and `job.cancel.requested` in, `job.progress` out.

Translates protobuf events to domain jobs and back; the runner never sees a message.
Ack, retry and dead-letter follow the queue's policy (`genai_common.amqp`): return -> ack
(results are stored and the outcome reported), PermanentFailure (an invalid job) -> given up at
once, any other error -> retried with back-off; `give_up` reports the job failed with the reason
before the message is dead-lettered.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aio_pika.abc import AbstractIncomingMessage

from genai.events.v1 import events_pb2
from genai_common.amqp import JOB_PROGRESS, Amqp, PermanentFailure, attempt, decode, job_id_of
from imagegen.domain import ImageJob, InvalidJob, JobState, JobUpdate, Limits
from imagegen.metrics import JOBS, observe_queue_wait
from imagegen.runner import ImageJobRunner

log = logging.getLogger(__name__)


_STATES = {
    JobState.RUNNING: events_pb2.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: events_pb2.JOB_STATE_SUCCEEDED,
    JobState.FAILED: events_pb2.JOB_STATE_FAILED,
    JobState.CANCELLED: events_pb2.JOB_STATE_CANCELLED,
}


def progress_event(update: JobUpdate) -> events_pb2.JobProgress:
    return events_pb2.JobProgress(
        job_id=update.job_id, kind=events_pb2.JOB_KIND_IMAGE, state=_STATES[update.state],
        progress=update.progress, stage=update.stage, reason=update.reason,
        result_keys=list(update.result_keys), stage_seconds=update.stage_seconds, emitted_at=datetime.now(UTC),
    )


def job_from_event(event: events_pb2.ImageJobRequested) -> ImageJob:
    return ImageJob(
        job_id=event.job_id, prompt=event.prompt, negative_prompt=event.negative_prompt, n=event.n,
        width=event.width, height=event.height, steps=event.steps, guidance=event.guidance, seed=event.seed,
    )


class AmqpProgressSink:
    """Reports job updates as confirmed `job.progress` events (raises Unavailable if not confirmed)."""

    def __init__(self, amqp: Amqp) -> None:
        self._amqp = amqp

    async def report(self, update: JobUpdate) -> None:
        await self._amqp.publish(JOB_PROGRESS, progress_event(update), headers={"job_id": update.job_id})


class ImageJobHandler:
    def __init__(self, runner: ImageJobRunner, sink: AmqpProgressSink, limits: Limits) -> None:
        self._runner, self._sink, self._limits = runner, sink, limits

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        event = decode(message, events_pb2.ImageJobRequested)
        if attempt(message) == 1:  # a retry's wait is its back-off, not the queue's
            observe_queue_wait(event.submitted_at)
        job = job_from_event(event)
        try:
            job.validate(self._limits)
        except InvalidJob as exc:
            raise PermanentFailure(f"invalid job: {exc}") from exc
        log.info("job started", extra={"job_id": job.job_id, "images": job.n, "steps": job.steps,
                                       "attempt": attempt(message)})
        outcome = await self._runner.run(job)
        JOBS.labels(outcome.value).inc()

    async def give_up(self, message: AbstractIncomingMessage, reason: str) -> None:
        """The queue's give-up hook: report the job failed (when its id can be found)."""
        JOBS.labels(JobState.FAILED.value).inc()
        job_id = job_id_of(message, events_pb2.ImageJobRequested)
        if not job_id:
            log.error("gave up on an image job message without a job id: %s", reason)
            return
        await self._sink.report(JobUpdate(job_id, JobState.FAILED, 0, reason=reason))


class CancelHandler:
    def __init__(self, runner: ImageJobRunner) -> None:
        self._runner = runner

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        event = decode(message, events_pb2.JobCancelRequested)
        if event.job_id:
            log.info("cancel requested", extra={"job_id": event.job_id})
            self._runner.cancel(event.job_id)
