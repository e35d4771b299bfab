"""Gateway feature: documents (upload → `document.uploaded` → ingest → retriever; list, status,
delete, search). Routes in `routes`, use cases in `service`, SQL in `store`, AMQP in `events`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack

from fastapi import FastAPI

from gateway.documents.domain import Passage
from gateway.documents.events import AmqpUploadPublisher, progress_applier
from gateway.documents.routes import router
from gateway.documents.service import DocumentService
from gateway.documents.store import DocumentStore
from gateway.settings import GatewaySettings
from genai.events.v1 import events_pb2
from genai_common.errors import Unavailable

__all__ = ["open_resources", "router"]

log = logging.getLogger(__name__)


class _AppRetriever:
    """The gateway's shared retriever client (`app.state.retriever`), looked up per call."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def _client(self):  # type: ignore[no-untyped-def]
        client = getattr(self._app.state, "retriever", None)
        if client is None:
            raise Unavailable("the retriever is not configured")
        return client

    async def search(self, query: str, *, top_k: int, score_threshold: float | None = None,
                     document_ids: Sequence[str] = (), mode: str | None = None) -> Sequence[Passage]:
        return await self._client().search(query, top_k=top_k, score_threshold=score_threshold,
                                           document_ids=document_ids, mode=mode)

    async def delete_document(self, document_id: str) -> int:
        return await self._client().delete_document(document_id)


async def open_resources(app: FastAPI, settings: GatewaySettings, stack: AsyncExitStack) -> None:
    """Build the document service on `app.state.documents` and register its progress applier."""
    service = DocumentService(
        DocumentStore(app.state.sessions), app.state.blobs, AmqpUploadPublisher(app.state.amqp),
        _AppRetriever(app), max_bytes=settings.upload_max_bytes,
    )
    app.state.documents = service
    app.state.progress.register(events_pb2.JOB_KIND_DOCUMENT, progress_applier(service.apply_progress))
    await service.forget_unpublished()
