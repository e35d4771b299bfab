"""Gateway feature: documents (upload → `document.uploaded` → ingest → retriever; list, status,
delete, search). Routes in `routes`, use cases in `service`, SQL in `store`, AMQP in `events`.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import FastAPI

from gateway.documents.events import AmqpUploadPublisher, progress_applier
from gateway.documents.routes import router
from gateway.documents.service import DocumentService
from gateway.documents.store import DocumentStore
from gateway.settings import GatewaySettings
from genai.events.v1 import events_pb2

__all__ = ["open_resources", "router"]


async def open_resources(app: FastAPI, settings: GatewaySettings, stack: AsyncExitStack) -> None:
    """Build the document service on `app.state.documents` and register its progress applier.

    Uses the retriever client the chat feature opened (`app.state.retriever`; chat comes first
    in `FEATURES`).
    """
    service = DocumentService(
        DocumentStore(app.state.sessions), app.state.blobs, AmqpUploadPublisher(app.state.amqp),
        app.state.retriever, max_bytes=settings.upload_max_bytes,
    )
    app.state.documents = service
    app.state.progress.register(events_pb2.JOB_KIND_DOCUMENT, progress_applier(service.apply_progress))
    await service.forget_unpublished()
