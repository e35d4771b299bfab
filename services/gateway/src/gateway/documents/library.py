"""The document library: upload, list, delete, apply progress, search. No HTTP, AMQP or protobuf here."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from gateway.documents.domain import Document, Page, ProgressUpdate, Retriever, Status, UploadPublisher
from gateway.documents.naming import document_name
from gateway.documents.receive import receive_file, too_large
from gateway.documents.store import Applied, DocumentStore
from gateway.peer_models import Passage
from gateway.progress import ProgressReport
from genai_common.blobs import BlobStore

log = logging.getLogger(__name__)

# Room for the multipart framing and small fields around the file when checking Content-Length.
MULTIPART_SLACK_BYTES = 64 * 1024
UNPUBLISHED_GRACE = timedelta(minutes=10)


class DocumentLibrary:
    def __init__(self, store: DocumentStore, blobs: BlobStore, publisher: UploadPublisher,
                 retriever: Retriever, *, max_bytes: int) -> None:
        self._store, self._blobs, self._publisher = store, blobs, publisher
        self._retriever = retriever
        self._max_bytes = max_bytes

    async def upload(self, tenant: str, body: AsyncIterator[bytes], content_type: str,
                     content_length: int | None) -> Document:
        """Stream the file to the blob store, record it, publish `document.uploaded` (confirmed).

        On any failure nothing is left behind: no blob, no record (and no event, since the
        event is the last step).
        """
        if content_length is not None and content_length > self._max_bytes + MULTIPART_SLACK_BYTES:
            raise too_large(f"the upload is larger than the {self._max_bytes}-byte limit")
        document_id = str(uuid.uuid4())
        blob_key = f"documents/{document_id}"
        writer = self._blobs.writer(blob_key)
        try:
            received = await receive_file(body, content_type, writer, max_bytes=self._max_bytes)
            await writer.commit()
        except BaseException:
            await writer.abort()
            raise
        name = document_name(received.raw_filename, received.media_type)
        try:
            document = await self._store.insert(id=document_id, name=name, media_type=received.media_type,
                                                size_bytes=received.size, sha256=received.sha256, blob_key=blob_key,
                                                tenant=tenant)
            await self._publisher.document_uploaded(document)
            await self._store.mark_published(document_id)
        except BaseException:
            await asyncio.shield(self._forget(document_id, blob_key))
            raise
        log.info("document uploaded", extra={"document_id": document_id, "media_type": received.media_type,
                                             "size_bytes": received.size})
        return document

    async def _forget(self, document_id: str, blob_key: str) -> None:
        try:
            await self._store.remove(document_id)
        finally:
            await self._blobs.delete(blob_key)

    async def get(self, tenant: str, document_id: str) -> Document:
        return await self._store.get(tenant, document_id)

    async def page(self, tenant: str, *, limit: int, after: str | None, offset: int) -> Page:
        """The tenant's documents, newest first; `after` is the id of the last document of the previous page."""
        return await self._store.page(tenant, limit=limit, after=after, offset=offset)

    async def delete(self, tenant: str, document_id: str) -> None:
        """Tombstone (hidden at once), then remove the blob and the vectors.

        If the retriever cannot be reached the error propagates; the tombstone stays, so a
        retried DELETE or the document's next progress event finishes the purge.
        """
        document = await self._store.tombstone(tenant, document_id)
        await self._blobs.delete(document.blob_key)
        await self._purge_vectors(document_id)
        log.info("document deleted", extra={"document_id": document_id})

    async def _purge_vectors(self, document_id: str) -> None:
        deleted = await self._retriever.delete_document(document_id)
        await self._store.mark_purged(document_id)
        log.info("document vectors deleted", extra={"document_id": document_id, "deleted": deleted})

    async def apply_progress(self, report: ProgressReport) -> Applied:
        """Idempotent: only moves a record forward; progress for a tombstone purges vectors."""
        change = ProgressUpdate.of(report)
        outcome = await self._store.apply(change)
        if outcome is Applied.TOMBSTONE and change.status in (Status.INDEXED, Status.FAILED):
            await self._purge_vectors(change.document_id)
        elif outcome is Applied.UNKNOWN:
            log.warning("progress for an unknown document ignored", extra={"document_id": change.document_id})
        return outcome

    async def search(self, tenant: str, query: str, *, top_k: int, score_threshold: float | None,
                     document_ids: Sequence[str], mode: str | None) -> list[Passage]:
        """Ranked chunks of the tenant's documents (the retriever filters on the tenant, and only
        the tenant's indexed, not deleted documents are kept here too), named as listed."""
        passages = await self._retriever.search(query, top_k=top_k, score_threshold=score_threshold,
                                                document_ids=document_ids, mode=mode, tenant=tenant)
        names = await self._store.indexed_names(tenant, [p.document_id for p in passages])
        return [replace(p, document_name=names[p.document_id]) for p in passages if p.document_id in names]

    async def stalled(self, status: Status, updated_before: datetime, limit: int) -> list[Document]:
        return await self._store.stalled(status, updated_before, limit)

    async def requeue(self, document: Document, updated_before: datetime, now: datetime) -> bool:
        """Publish `document.uploaded` again for a document nobody picked up (idempotent: ingest
        makes the same chunk ids); False when it moved meanwhile. Raises Unavailable when the
        broker refuses it (the next sweep tries again)."""
        if not await self._store.claim(document.id, document.status, updated_before, now):
            return False
        await self._publisher.document_uploaded(document)
        return True

    async def forget_unpublished(self) -> int:
        """Drop records (and blobs) of uploads that died before their broker confirm."""
        stale = await self._store.stale_unpublished(UNPUBLISHED_GRACE)
        for document in stale:
            await self._forget(document.id, document.blob_key)
        if stale:
            log.warning("removed %d uploads that were never confirmed", len(stale))
        return len(stale)
