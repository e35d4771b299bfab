"""`job.progress` events for documents (JOB_KIND_DOCUMENT, job_id = document id).

Intermediate `processing` updates are best effort (a lost one is superseded by the next);
the terminal `succeeded` / `failed` events must be confirmed by the broker, or the delivery
fails and is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from genai.events.v1 import events_pb2
from genai_common.amqp import JOB_PROGRESS, Amqp
from genai_common.errors import Unavailable

log = logging.getLogger(__name__)


def _event(document_id: str, state: events_pb2.JobState, stage_seconds: Mapping[str, float]) -> events_pb2.JobProgress:
    return events_pb2.JobProgress(job_id=document_id, kind=events_pb2.JOB_KIND_DOCUMENT, state=state,
                                  stage_seconds=dict(stage_seconds), emitted_at=datetime.now(UTC))


class AmqpProgress:
    def __init__(self, amqp: Amqp) -> None:
        self._amqp = amqp

    async def processing(self, document_id: str, stage: str, progress: int, stage_seconds: Mapping[str, float]) -> None:
        event = _event(document_id, events_pb2.JOB_STATE_RUNNING, stage_seconds)
        event.stage, event.progress = stage, progress
        try:
            await self._amqp.publish(JOB_PROGRESS, event)
        except Unavailable as exc:
            log.warning("progress update not published: %s", exc.message, extra={"document_id": document_id})

    async def succeeded(self, document_id: str, pages: int, chunks: int, stage_seconds: Mapping[str, float]) -> None:
        event = _event(document_id, events_pb2.JOB_STATE_SUCCEEDED, stage_seconds)
        event.progress, event.pages, event.chunks = 100, pages, chunks
        await self._amqp.publish(JOB_PROGRESS, event)

    async def failed(self, document_id: str, reason: str, stage_seconds: Mapping[str, float]) -> None:
        event = _event(document_id, events_pb2.JOB_STATE_FAILED, stage_seconds)
        event.reason = reason
        await self._amqp.publish(JOB_PROGRESS, event)
