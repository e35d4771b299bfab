"""`job.progress` events for documents (JOB_KIND_DOCUMENT, job_id = document id).

Intermediate `processing` updates are best effort (a lost one is superseded by the next);
the terminal `succeeded` / `failed` events must be confirmed by the broker, or the delivery
fails and is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from google.protobuf.timestamp_pb2 import Timestamp

from genai.events.v1 import events_pb2
from genai_common.amqp import Amqp, JOB_PROGRESS
from genai_common.errors import Unavailable

log = logging.getLogger(__name__)


def _event(document_id: str, state: int, **fields: object) -> events_pb2.JobProgress:
    now = Timestamp()
    now.GetCurrentTime()
    return events_pb2.JobProgress(job_id=document_id, kind=events_pb2.JOB_KIND_DOCUMENT, state=state,
                                  emitted_at=now, **fields)


class AmqpProgress:
    def __init__(self, amqp: Amqp) -> None:
        self._amqp = amqp

    async def processing(self, document_id: str, stage: str, progress: int, stage_seconds: Mapping[str, float]) -> None:
        event = _event(document_id, events_pb2.JOB_STATE_RUNNING, stage=stage, progress=progress,
                       stage_seconds=dict(stage_seconds))
        try:
            await self._amqp.publish(JOB_PROGRESS, event)
        except Unavailable as exc:
            log.warning("progress update not published: %s", exc.message, extra={"document_id": document_id})

    async def succeeded(self, document_id: str, pages: int, chunks: int, stage_seconds: Mapping[str, float]) -> None:
        event = _event(document_id, events_pb2.JOB_STATE_SUCCEEDED, progress=100, pages=pages, chunks=chunks,
                       stage_seconds=dict(stage_seconds))
        await self._amqp.publish(JOB_PROGRESS, event)

    async def failed(self, document_id: str, reason: str, stage_seconds: Mapping[str, float]) -> None:
        event = _event(document_id, events_pb2.JOB_STATE_FAILED, reason=reason, stage_seconds=dict(stage_seconds))
        await self._amqp.publish(JOB_PROGRESS, event)
