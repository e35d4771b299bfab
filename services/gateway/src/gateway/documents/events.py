"""The documents feature's AMQP edge: `document.uploaded` out, `job.progress` (documents) in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from google.protobuf.timestamp_pb2 import Timestamp

from gateway.documents.domain import Document, ProgressUpdate
from gateway.documents.models import Status
from genai.events.v1 import events_pb2
from genai_common.amqp import Amqp, DOCUMENT_UPLOADED


_STATUS_OF_STATE = {
    events_pb2.JOB_STATE_QUEUED: Status.QUEUED,
    events_pb2.JOB_STATE_RUNNING: Status.PROCESSING,
    events_pb2.JOB_STATE_SUCCEEDED: Status.INDEXED,
    events_pb2.JOB_STATE_FAILED: Status.FAILED,
    events_pb2.JOB_STATE_CANCELLED: Status.FAILED,
}


class AmqpUploadPublisher:
    def __init__(self, amqp: Amqp) -> None:
        self._amqp = amqp

    async def document_uploaded(self, document: Document) -> None:
        uploaded_at = Timestamp()
        uploaded_at.FromDatetime(document.created_at)
        event = events_pb2.DocumentUploaded(
            document_id=document.id, blob_key=document.blob_key, sha256=document.sha256,
            filename=document.name, media_type=document.media_type, size_bytes=document.size_bytes,
            uploaded_at=uploaded_at,
        )
        # message_id and the header let even an undecodable body be traced to its record.
        await self._amqp.publish(DOCUMENT_UPLOADED, event, message_id=document.id,
                                 headers={"document_id": document.id})


def progress_from_pb(event: events_pb2.JobProgress) -> ProgressUpdate | None:
    """Domain form of a document progress event; None for states that say nothing (unspecified)."""
    status = _STATUS_OF_STATE.get(event.state)
    if status is None:
        return None
    reason = event.reason or ("cancelled" if event.state == events_pb2.JOB_STATE_CANCELLED else "")
    return ProgressUpdate(
        document_id=event.job_id, status=status,
        progress=100 if status is Status.INDEXED else min(event.progress, 100), stage=event.stage[:32],
        reason=reason[:2000], pages=event.pages, chunks=event.chunks, stage_seconds=dict(event.stage_seconds),
    )


def progress_applier(apply: Callable[[ProgressUpdate], Awaitable[object]]) -> Callable[[events_pb2.JobProgress], Awaitable[None]]:
    """The function registered with the gateway's ProgressDispatcher for JOB_KIND_DOCUMENT."""

    async def applier(event: events_pb2.JobProgress) -> None:
        change = progress_from_pb(event)
        if change is not None and change.document_id:
            await apply(change)

    return applier
