"""The ingest worker's domain values: a document to index, and what became of it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True)
class IngestJob:
    """One uploaded document to index (from its `document.uploaded` event)."""

    document_id: str
    blob_key: str
    filename: str
    media_type: str
    sha256: str = ""
    # The file's size as uploaded (what it holds of the worker's byte budget).
    size_bytes: int = 0
    # Whose document it is: the retriever stores it with the chunks and filters every search on it.
    tenant: str = "default"


class Outcome(enum.StrEnum):
    """How a document's processing ended (`deleted`: it was deleted before it could be indexed)."""

    INDEXED = "indexed"
    FAILED = "failed"
    DELETED = "deleted"


@dataclass
class Report:
    """What processing one document did, for metrics and logs."""

    outcome: Outcome
    pages: int = 0
    chunks: int = 0
    reason: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)
