"""The `jobs` table and the job as the rest of the feature sees it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base


class Kind(enum.StrEnum):
    IMAGE = "image"
    TEXT = "text"


class Status(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (Status.QUEUED, Status.RUNNING)
TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=Status.QUEUED)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    stage: Mapped[str] = mapped_column(String(32), default="")
    params: Mapped[dict] = mapped_column(JSON)
    result_keys: Mapped[list] = mapped_column(JSON, default=list)
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
        UniqueConstraint("idempotency_key", "batch_index", name="uq_jobs_idempotency"),
        Index("ix_jobs_created", "created_at", "id"),
    )


@dataclass(frozen=True)
class Job:
    id: str
    kind: Kind
    status: Status
    progress: int
    stage: str
    params: dict[str, Any]
    result_keys: tuple[str, ...]
    output_text: str | None
    error: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_row(cls, row: JobRow) -> Job:
        return cls(
            id=row.id, kind=Kind(row.kind), status=Status(row.status), progress=row.progress, stage=row.stage,
            params=dict(row.params), result_keys=tuple(row.result_keys or ()), output_text=row.output_text,
            error=row.error, created_at=row.created_at, updated_at=row.updated_at, started_at=row.started_at,
            finished_at=row.finished_at,
        )


@dataclass(frozen=True)
class NewJob:
    id: str
    kind: Kind
    params: dict[str, Any]


@dataclass(frozen=True)
class Update:
    """A report about a job from whoever runs it; applied only if it moves the job forward."""

    job_id: str
    status: Status
    progress: int = 0
    stage: str = ""
    reason: str = ""
    result_keys: tuple[str, ...] = ()
    output_text: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
