"""The gateway's one consumer of `job.progress`: decodes each event into a `ProgressReport` and
hands it to the feature that owns the record (documents, or jobs for image and text jobs).

The gateway alone owns the records, so the appliers write them; they are idempotent (state and
progress only move forward). An applier that fails (the database is down) is retried with
back-off on the broker; an event of an unknown kind is dead-lettered at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractIncomingMessage

from gateway.progress import JobState, ProgressReport
from genai.events.v1 import events_pb2
from genai_common.amqp import JOB_PROGRESS, Amqp, PermanentFailure, QueueSpec, RetryPolicy, decode

PROGRESS_QUEUE_NAME = "gateway.job-progress"

Applier = Callable[[ProgressReport], Awaitable[object]]

_STATES = {
    events_pb2.JOB_STATE_QUEUED: JobState.QUEUED,
    events_pb2.JOB_STATE_RUNNING: JobState.RUNNING,
    events_pb2.JOB_STATE_SUCCEEDED: JobState.SUCCEEDED,
    events_pb2.JOB_STATE_FAILED: JobState.FAILED,
    events_pb2.JOB_STATE_CANCELLED: JobState.CANCELLED,
}


def progress_queue(attempts: int, budget_seconds: float) -> QueueSpec:
    return QueueSpec(PROGRESS_QUEUE_NAME, routing_keys=(JOB_PROGRESS,), prefetch=32,
                     retry=RetryPolicy(attempts=attempts, budget_seconds=budget_seconds))


def report_from_pb(event: events_pb2.JobProgress) -> ProgressReport | None:
    """The domain form of an event; None when it says nothing (no job id, state unspecified)."""
    state = _STATES.get(event.state)
    if state is None or not event.job_id:
        return None
    return ProgressReport(
        job_id=event.job_id, state=state, progress=event.progress, stage=event.stage, reason=event.reason,
        pages=event.pages, chunks=event.chunks, result_keys=tuple(event.result_keys),
        output_text=event.output_text or None, stage_seconds=dict(event.stage_seconds),
    )


class ProgressConsumer:
    def __init__(self, *, documents: Applier, jobs: Applier) -> None:
        self._appliers = {
            events_pb2.JOB_KIND_DOCUMENT: documents,
            events_pb2.JOB_KIND_IMAGE: jobs,
            events_pb2.JOB_KIND_TEXT: jobs,
        }

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        await self.dispatch(decode(message, events_pb2.JobProgress))

    async def replay_dead_letters(self, amqp: Amqp, limit: int = 1000) -> int:
        """Apply the events this consumer gave up on (its dead-letter queue) again; a failure
        (the database still down) leaves the rest for the next call."""
        return await amqp.replay(progress_queue(1, 1).dead_letter_queue, self, limit=limit)

    async def dispatch(self, event: events_pb2.JobProgress) -> None:
        """Apply one event (what a delivery does once its body is decoded)."""
        applier = self._appliers.get(event.kind)
        if applier is None:
            raise PermanentFailure(f"no applier for job kind {events_pb2.JobKind.Name(event.kind)}")
        report = report_from_pb(event)
        if report is not None:
            await applier(report)
