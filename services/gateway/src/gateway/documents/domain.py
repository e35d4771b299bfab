"""Documents as the rest of the gateway sees them, and the collaborators they need."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from gateway.peer_models import Passage
from gateway.progress import JobState, ProgressReport


class Status(enum.StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    INDEXED = "indexed"
    FAILED = "failed"
    # A tombstone: hidden from the API; late progress for it deletes vectors instead of reviving it.
    DELETED = "deleted"


# Status only moves up this order. `indexed` outranks `failed`: if the vectors were committed
# (e.g. a dead-lettered event replayed by an operator), the document is usable.
RANK = {Status.QUEUED: 0, Status.PROCESSING: 1, Status.FAILED: 2, Status.INDEXED: 3, Status.DELETED: 9}

_STATUS_OF_STATE = {
    JobState.QUEUED: Status.QUEUED,
    JobState.RUNNING: Status.PROCESSING,
    JobState.SUCCEEDED: Status.INDEXED,
    JobState.FAILED: Status.FAILED,
    JobState.CANCELLED: Status.FAILED,
}
MAX_STAGE_CHARS = 32
MAX_REASON_CHARS = 2000


@dataclass(frozen=True)
class Document:
    id: str
    # The client's file name made safe to show (see `naming`): the name a citation gives too.
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
    tenant: str = "default"


@dataclass(frozen=True)
class ProgressUpdate:
    """What one progress report says about a document, bounded to what its record keeps."""

    document_id: str
    status: Status
    progress: int
    stage: str = ""
    reason: str = ""
    pages: int = 0
    chunks: int = 0
    stage_seconds: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, report: ProgressReport) -> ProgressUpdate:
        status = _STATUS_OF_STATE[report.state]
        reason = report.reason or ("cancelled" if report.state is JobState.CANCELLED else "")
        return cls(
            document_id=report.job_id, status=status,
            progress=100 if status is Status.INDEXED else min(report.progress, 100),
            stage=report.stage[:MAX_STAGE_CHARS], reason=reason[:MAX_REASON_CHARS], pages=report.pages,
            chunks=report.chunks, stage_seconds=dict(report.stage_seconds),
        )


@dataclass(frozen=True)
class Page:
    documents: Sequence[Document]
    has_more: bool


class UploadPublisher(Protocol):
    async def document_uploaded(self, document: Document) -> None:
        """Publish `document.uploaded` with a broker confirm; raise Unavailable if refused."""


class Retriever(Protocol):
    async def search(self, query: str, *, top_k: int, score_threshold: float | None = None,
                     document_ids: Sequence[str] = (), mode: str | None = None,
                     tenant: str = "default") -> Sequence[Passage]: ...

    async def delete_document(self, document_id: str) -> int: ...
