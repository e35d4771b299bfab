"""The gateway's one consumer of `job.progress`: decodes each event and hands it to the applier
registered for its kind (documents, image jobs, text jobs). The gateway alone owns the records,
so appliers write them; they must be idempotent (state and progress only move forward).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractIncomingMessage

from genai.events.v1 import events_pb2
from genai_common.amqp import JOB_PROGRESS, PermanentFailure, QueueSpec, RetryPolicy, decode

PROGRESS_QUEUE_NAME = "gateway.job-progress"


def progress_queue(attempts: int, budget_seconds: float) -> QueueSpec:
    return QueueSpec(PROGRESS_QUEUE_NAME, routing_keys=(JOB_PROGRESS,), prefetch=32,
                     retry=RetryPolicy(attempts=attempts, budget_seconds=budget_seconds))

Applier = Callable[[events_pb2.JobProgress], Awaitable[None]]


class ProgressDispatcher:
    def __init__(self) -> None:
        self._appliers: dict[int, Applier] = {}

    def register(self, kind: int, applier: Applier) -> None:
        """`kind` is an `events_pb2.JobKind` value; one applier per kind."""
        if kind in self._appliers:
            raise ValueError(f"an applier for job kind {kind} is already registered")
        self._appliers[kind] = applier

    async def handle(self, message: AbstractIncomingMessage) -> None:
        event = decode(message, events_pb2.JobProgress)
        applier = self._appliers.get(event.kind)
        if applier is None:
            raise PermanentFailure(f"no applier for job kind {events_pb2.JobKind.Name(event.kind)}")
        await applier(event)
