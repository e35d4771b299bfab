"""The AMQP edge of the ingest worker: `document.uploaded` deliveries → pipeline → ack / retry / DLQ.

- The handler returns (→ ack) only after the index write and the terminal progress event are
  confirmed; a document that cannot be read is a result (`failed` + reason), not an error.
- An infrastructure error requeues the message; on the last delivery the broker allows, the
  record is first marked failed with the reason, then the message is dead-lettered.
- A body that does not decode is dead-lettered at once; the `document_id` header (or the
  message id) still lets the record be marked failed.
"""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractIncomingMessage

from genai.events.v1 import events_pb2
from genai_common.amqp import PermanentFailure, decode, delivery_count
from genai_common.errors import ServiceError
from genai_common.logging import request_id_var
from ingest import metrics
from ingest.pipeline import IngestJob, IngestPipeline, ProgressSink, Report

log = logging.getLogger(__name__)

UNREADABLE_EVENT = "the upload event could not be read ({}); upload the file again"


def job_from_event(event: events_pb2.DocumentUploaded) -> IngestJob:
    if not event.document_id or not event.blob_key:
        raise PermanentFailure("document.uploaded without document_id or blob_key")
    return IngestJob(document_id=event.document_id, blob_key=event.blob_key,
                     filename=event.filename or "document", media_type=event.media_type, sha256=event.sha256)


class UploadConsumer:
    def __init__(self, pipeline: IngestPipeline, progress: ProgressSink, *, delivery_limit: int) -> None:
        self._pipeline = pipeline
        self._progress = progress
        self._delivery_limit = delivery_limit

    async def handle(self, message: AbstractIncomingMessage) -> None:
        traced_id = _traced_document_id(message)
        token = request_id_var.set(traced_id or None)
        try:
            try:
                job = job_from_event(decode(message, events_pb2.DocumentUploaded))
            except PermanentFailure as exc:
                await self._dead_letter_unreadable(traced_id, str(exc))
                raise
            await self._run(job, message)
        finally:
            request_id_var.reset(token)

    async def _run(self, job: IngestJob, message: AbstractIncomingMessage) -> None:
        attempt = delivery_count(message)
        try:
            report = await self._pipeline.process(job)
        except (ServiceError, OSError) as exc:
            await self._retry_or_give_up(job, attempt, _describe(exc))
        except Exception as exc:  # a bug or an unexpected library error: retried, then dead-lettered
            log.exception("ingest failed unexpectedly", extra={"document_id": job.document_id})
            await self._retry_or_give_up(job, attempt, f"internal error ({type(exc).__name__})")
        else:
            _record(report)

    async def _retry_or_give_up(self, job: IngestJob, attempt: int, reason: str) -> None:
        if attempt < self._delivery_limit:
            metrics.DOCUMENTS.labels("retried").inc()
            log.warning("ingest attempt %d failed, will retry: %s", attempt + 1, reason,
                        extra={"document_id": job.document_id})
            raise RetryLater(reason)
        final = f"gave up after {attempt + 1} attempts: {reason}"
        await self._progress.failed(job.document_id, final, {})
        metrics.DOCUMENTS.labels("dead_lettered").inc()
        raise PermanentFailure(final)

    async def _dead_letter_unreadable(self, document_id: str, why: str) -> None:
        metrics.DOCUMENTS.labels("dead_lettered").inc()
        if document_id:
            await self._progress.failed(document_id, UNREADABLE_EVENT.format(why), {})
        else:
            log.error("undecodable document.uploaded without a document_id header: %s", why)


class RetryLater(Exception):
    """Requeue the delivery (the Consumer nacks with requeue on any non-permanent error)."""


def _traced_document_id(message: AbstractIncomingMessage) -> str:
    value = (message.headers or {}).get("document_id") or message.message_id or ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value)[:64]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ServiceError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"[:300]


def _record(report: Report) -> None:
    metrics.DOCUMENTS.labels(report.outcome.value).inc()
    for stage, seconds in report.stage_seconds.items():
        metrics.STAGE_SECONDS.labels(stage).observe(seconds)
    if report.chunks:
        metrics.CHUNKS.inc(report.chunks)
    log.info("document %s", report.outcome.value, extra={"pages": report.pages, "chunks": report.chunks,
                                                         "reason": report.reason})
