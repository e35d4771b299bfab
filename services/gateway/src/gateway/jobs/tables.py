"""The `jobs` table: one row per job (a text batch makes one per prompt)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.clock import utcnow
from gateway.db import Base
from gateway.progress import JobState


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Who may see the job (gateway.auth): every query is scoped to the caller's tenant.
    tenant: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    stage: Mapped[str] = mapped_column(String(32), default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    result_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    output_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    # Idempotency: the client's key, the hash of the request it came with, and the job's place in
    # that request (a text batch makes one job per prompt). The key is unique per place, so the
    # first insert wins and a concurrent or repeated request finds the jobs it made.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    batch_index: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # When the broker confirmed the job's message; null until then.
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        UniqueConstraint("tenant", "idempotency_key", "batch_index", name="uq_jobs_idempotency"),
        Index("ix_jobs_created", "created_at", "id"),
        Index("ix_jobs_tenant_created", "tenant", "created_at", "id"),
    )
