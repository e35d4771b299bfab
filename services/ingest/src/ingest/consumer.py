"""The AMQP edge of the ingest worker: `document.uploaded` deliveries → pipeline → ack.

- The handler returns (→ ack) only after the index write and the terminal progress event are
  confirmed; a document that cannot be read is a result (`failed` + reason), not an error.
- An infrastructure error (retriever down, blob store unreadable, broker refusing progress)
  raises: the queue's retry policy (`genai_common.amqp`) retries it with back-off, and when the
  attempts or the time budget are spent, `give_up` marks the record failed with the reason
  before the message is dead-lettered.
- A body that does not decode is given up at once; the `document_id` header (or the message
  id) still lets the record be marked failed.
"""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractIncomingMessage

from genai.events.v1 import events_pb2
from genai_common.amqp import PermanentFailure, attempt, decode, header_text
from genai_common.logging import request_id_var
from ingest import metrics
from ingest.domain import IngestJob, Report
from ingest.pipeline import IngestPipeline, ProgressSink

log = logging.getLogger(__name__)

UNREADABLE_EVENT = "the upload event could not be read ({}); upload the file again"


def job_from_event(event: events_pb2.DocumentUploaded) -> IngestJob:
    if not event.document_id or not event.blob_key:
        raise PermanentFailure("document.uploaded without document_id or blob_key")
    return IngestJob(document_id=event.document_id, blob_key=event.blob_key,
                     filename=event.filename or "document", media_type=event.media_type, sha256=event.sha256,
                     size_bytes=event.size_bytes, tenant=event.tenant or "default")


def traced_document_id(message: AbstractIncomingMessage) -> str:
    return header_text(message, "document_id") or (message.message_id or "")[:64]


class UploadConsumer:
    def __init__(self, pipeline: IngestPipeline, progress: ProgressSink) -> None:
        self._pipeline = pipeline
        self._progress = progress

    async def handle(self, message: AbstractIncomingMessage) -> None:
        token = request_id_var.set(traced_document_id(message) or None)
        try:
            event = decode(message, events_pb2.DocumentUploaded)
            if attempt(message) == 1:  # a retry's wait is its back-off, not the queue's
                metrics.observe_queue_wait(event.uploaded_at)
            job = job_from_event(event)
            try:
                report = await self._pipeline.process(job)
            except Exception:
                metrics.DOCUMENTS.labels("retried").inc()
                raise
            _record(report)
        finally:
            request_id_var.reset(token)

    async def give_up(self, message: AbstractIncomingMessage, reason: str) -> None:
        """The queue's give-up hook: the record says why, then the message is dead-lettered."""
        metrics.DOCUMENTS.labels("dead_lettered").inc()
        document_id = traced_document_id(message)
        try:
            decode(message, events_pb2.DocumentUploaded)
        except PermanentFailure:
            reason = UNREADABLE_EVENT.format(reason)
        if document_id:
            await self._progress.failed(document_id, reason, {})
        else:
            log.error("gave up on a document.uploaded without a document id: %s", reason)


def _record(report: Report) -> None:
    metrics.DOCUMENTS.labels(report.outcome.value).inc()
    for stage, seconds in report.stage_seconds.items():
        metrics.STAGE_SECONDS.labels(stage).observe(seconds)
    if report.chunks:
        metrics.CHUNKS.inc(report.chunks)
    log.info("document %s", report.outcome.value, extra={"pages": report.pages, "chunks": report.chunks,
                                                         "reason": report.reason})
