"""The `documents` table: one row per upload, kept as a tombstone after a delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.clock import utcnow
from gateway.db import Base
from gateway.documents.domain import Status


class DocumentRow(Base):
    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Who may see the document (gateway.auth): every query is scoped to the caller's tenant.
    tenant: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=Status.QUEUED)
    stage: Mapped[str] = mapped_column(String(32), default="")
    progress: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    pages: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    stage_seconds: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # False until the broker confirmed `document.uploaded`; such rows are not shown.
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    # For tombstones: whether the retriever confirmed the vectors are gone.
    vectors_purged: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_documents_created", "created_at", "id"),
                      Index("ix_documents_tenant_created", "tenant", "created_at", "id"))
