"""JSON shapes of the documents API (requests validated here; 422 names the field)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.clock import unix_seconds
from gateway.documents.domain import Document
from gateway.peer_models import Passage


class DocumentOut(BaseModel):
    id: str
    object: Literal["document"] = "document"
    name: str
    media_type: str
    size_bytes: int
    sha256: str
    # queued | processing | indexed | failed
    status: str
    # What the worker is doing while processing: parsing, chunking, embedding.
    stage: str
    progress: int
    # Why it failed, in words a person can act on ("" unless failed).
    reason: str
    pages: int
    chunks: int
    stage_seconds: dict[str, float]
    created_at: int
    updated_at: int

    @classmethod
    def of(cls, document: Document) -> DocumentOut:
        return cls(
            id=document.id, name=document.name, media_type=document.media_type, size_bytes=document.size_bytes,
            sha256=document.sha256, status=document.status.value, stage=document.stage,
            progress=document.progress, reason=document.reason, pages=document.pages, chunks=document.chunks,
            stage_seconds=dict(document.stage_seconds), created_at=unix_seconds(document.created_at),
            updated_at=unix_seconds(document.updated_at),
        )


class DocumentList(BaseModel):
    object: Literal["list"] = "list"
    data: list[DocumentOut]
    has_more: bool
    # Pass as `after` to get the next page (null on the last page).
    next_after: str | None


class DocumentDeleted(BaseModel):
    id: str
    object: Literal["document"] = "document"
    deleted: bool = True


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4000)
    top_k: int = Field(default=5, ge=1, le=100)
    score_threshold: float | None = None
    document_ids: list[str] = Field(default_factory=list, max_length=1000)
    mode: Literal["dense", "sparse", "hybrid"] | None = None


class SearchResultOut(BaseModel):
    chunk_id: str
    document_id: str
    name: str
    # 1-based; 0 when the source has no pages (plain text, Markdown).
    page: int
    chunk_index: int
    score: float
    text: str

    @classmethod
    def of(cls, hit: Passage) -> SearchResultOut:
        return cls(chunk_id=hit.chunk_id, document_id=hit.document_id, name=hit.document_name, page=hit.page,
                   chunk_index=hit.chunk_index, score=hit.score, text=hit.text)


class SearchResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[SearchResultOut]
