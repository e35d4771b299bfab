"""Documents as the rest of the gateway sees them, and the collaborators they need."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from gateway.documents.models import Status
from gateway.peer_models import Passage


@dataclass(frozen=True)
class Document:
    id: str
    name: str
    media_type: str
    size_bytes: int
    sha256: str
    blob_key: str
    status: Status
    stage: str
    progress: int
    reason: str
    pages: int
    chunks: int
    stage_seconds: Mapping[str, float]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ProgressUpdate:
    """One `job.progress` event for a document, already translated from the wire."""

    document_id: str
    status: Status
    progress: int
    stage: str = ""
    reason: str = ""
    pages: int = 0
    chunks: int = 0
    stage_seconds: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    documents: Sequence[Document]
    has_more: bool


class UploadPublisher(Protocol):
    async def document_uploaded(self, document: Document) -> None:
        """Publish `document.uploaded` with a broker confirm; raise Unavailable if refused."""


class Retriever(Protocol):
    async def search(self, query: str, *, top_k: int, score_threshold: float | None = None,
                     document_ids: Sequence[str] = (), mode: str | None = None) -> Sequence[Passage]: ...

    async def delete_document(self, document_id: str) -> int: ...
