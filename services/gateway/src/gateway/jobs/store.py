"""Job records in the gateway's SQL store (SQLite or PostgreSQL through one SQLAlchemy code path).

Every state change is one conditional UPDATE, so concurrent writers (the progress consumer, the
text consumer, a cancel, another replica) cannot move a job backwards: a job leaves `queued` or
`running` only forward, a terminal state is final, and progress only grows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.clock import utcnow
from gateway.jobs.domain import Job, Kind, NewJob
from gateway.jobs.tables import JobRow
from gateway.progress import ACTIVE, TERMINAL, JobState, ProgressReport
from genai_common.errors import Conflict, NotFound, ValidationFailed

MARK_CHUNK = 500
DEFAULT_TENANT = "default"
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Idempotency:
    key: str
    request_hash: str


def to_job(row: JobRow) -> Job:
    return Job(
        id=row.id, kind=Kind(row.kind), status=JobState(row.status), progress=row.progress, stage=row.stage,
        params=dict(row.params), result_keys=tuple(row.result_keys or ()), output_text=row.output_text,
        error=row.error, created_at=row.created_at, updated_at=row.updated_at, started_at=row.started_at,
        finished_at=row.finished_at,
    )


class JobStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        # mark_published's group commit: ids waiting for the next UPDATE, and its outcome.
        self._marking = asyncio.Lock()
        self._to_mark: list[str] = []
        self._marked: asyncio.Future[None] | None = None

    async def create(self, jobs: Sequence[NewJob], idempotency: Idempotency | None,
                     tenant: str = DEFAULT_TENANT) -> tuple[list[Job], bool]:
        """Insert `tenant`'s `jobs` in one transaction; returns them and True. With a key the tenant
        already used for the same request, returns the jobs it made and False; for another request,
        ValidationFailed. Keys are the tenant's own: another tenant's key is a different key."""
        now = utcnow()
        rows = [
            JobRow(id=job.id, tenant=tenant, kind=job.kind, status=JobState.QUEUED, progress=0, stage="",
                   params=job.params, result_keys=[], error="", batch_index=index, created_at=now, updated_at=now,
                   idempotency_key=idempotency.key if idempotency else None,
                   request_hash=idempotency.request_hash if idempotency else None)
            for index, job in enumerate(jobs)
        ]
        try:
            async with self._sessions.begin() as session:
                session.add_all(rows)
            return [to_job(row) for row in rows], True
        except IntegrityError:
            if idempotency is None:
                raise
        return await self._replay(idempotency, tenant), False

    async def _replay(self, idempotency: Idempotency, tenant: str) -> list[Job]:
        async with self._sessions() as session:
            result = await session.execute(
                select(JobRow).where(JobRow.idempotency_key == idempotency.key, JobRow.tenant == tenant)
                .order_by(JobRow.batch_index))
            rows = result.scalars().all()
        if not rows:  # the first request's jobs were withdrawn (the broker refused them): try again
            raise Conflict("a request with this Idempotency-Key failed just now; retry it")
        if rows[0].request_hash != idempotency.request_hash:
            raise ValidationFailed("this Idempotency-Key was already used with a different request",
                                   code="idempotency_key_reused", param=IDEMPOTENCY_HEADER)
        return [to_job(row) for row in rows]

    async def mark_published(self, job_ids: Sequence[str]) -> None:
        """Record the broker's confirm. Concurrent callers share one UPDATE: ids that arrive while
        one is being written go together into the next (a burst costs a few writes, not one each)."""
        if self._marked is None:
            self._marked = asyncio.get_running_loop().create_future()
        batch = self._marked
        self._to_mark.extend(job_ids)
        async with self._marking:
            if batch is self._marked:  # not written yet: write it, with every id that joined it
                ids, self._to_mark, self._marked = self._to_mark, [], None
                try:
                    statement = update(JobRow).values(published_at=utcnow())
                    async with self._sessions.begin() as session:
                        for start in range(0, len(ids), MARK_CHUNK):  # within the drivers' bind-parameter limits
                            await session.execute(statement.where(JobRow.id.in_(ids[start:start + MARK_CHUNK])))
                except Exception as exc:
                    batch.set_exception(exc)
                    batch.exception()  # retrieved here: the callers that joined the batch re-raise it
                    raise
                except BaseException:
                    batch.cancel()
                    raise
                batch.set_result(None)
        await batch

    async def unpublished(self, older_than: timedelta, limit: int) -> list[Job]:
        """Queued jobs whose message was never confirmed (a gateway stopped between insert and publish)."""
        cutoff = utcnow() - older_than
        async with self._sessions() as session:
            result = await session.execute(
                select(JobRow).where(JobRow.published_at.is_(None), JobRow.status == JobState.QUEUED.value,
                                     JobRow.created_at < cutoff).order_by(JobRow.created_at).limit(limit))
            return [to_job(row) for row in result.scalars()]

    async def withdraw(self, job_ids: Sequence[str]) -> None:
        """Delete jobs that were never queued (their message could not be published)."""
        async with self._sessions.begin() as session:
            await session.execute(delete(JobRow).where(JobRow.id.in_(list(job_ids))))

    async def get(self, job_id: str, tenant: str | None = None) -> Job | None:
        """The job; with `tenant`, only if it is that tenant's (None: any, for the gateway's own use)."""
        async with self._sessions() as session:
            row = await session.get(JobRow, job_id)
            return to_job(row) if row is not None and tenant in (None, row.tenant) else None

    async def get_many(self, job_ids: Sequence[str], tenant: str | None = None) -> dict[str, Job]:
        query = select(JobRow).where(JobRow.id.in_(list(job_ids)))
        if tenant is not None:
            query = query.where(JobRow.tenant == tenant)
        async with self._sessions() as session:
            result = await session.execute(query)
            return {row.id: to_job(row) for row in result.scalars()}

    async def recent(self, limit: int, tenant: str | None = None) -> list[Job]:
        query = select(JobRow)
        if tenant is not None:
            query = query.where(JobRow.tenant == tenant)
        async with self._sessions() as session:
            result = await session.execute(query.order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit))
            return [to_job(row) for row in result.scalars()]

    async def apply(self, change: ProgressReport) -> Kind | None:
        """Apply `change` if it moves the job forward; the job's kind if the record changed, else None."""
        if change.state == JobState.QUEUED:
            return None
        now = utcnow()
        progress = 100 if change.state == JobState.SUCCEEDED else max(0, min(change.progress, 100))
        values: dict[str, object] = {
            "status": change.state.value,
            "progress": case((JobRow.progress > progress, JobRow.progress), else_=progress),
            "updated_at": now,
            "started_at": func.coalesce(JobRow.started_at, now),
        }
        if change.stage:
            values["stage"] = change.stage
        if change.state in TERMINAL:
            values["finished_at"] = now
            values["error"] = change.reason if change.state == JobState.FAILED else ""
        if change.state == JobState.SUCCEEDED:
            values["result_keys"] = list(change.result_keys)
            values["output_text"] = change.output_text
        statement = update(JobRow).where(JobRow.id == change.job_id, JobRow.status.in_([s.value for s in ACTIVE]))
        async with self._sessions.begin() as session:
            result = await session.execute(statement.values(**values).returning(JobRow.kind))
            kind = result.scalar_one_or_none()
        return Kind(kind) if kind is not None else None

    async def cancel(self, job_id: str, tenant: str | None = None) -> tuple[Job, bool]:
        """Cancel a queued or running job at once; returns the job and whether this call cancelled
        it. A job that already succeeded or failed -> Conflict; unknown (or not `tenant`'s) -> NotFound."""
        now = utcnow()
        mine = JobRow.tenant == tenant if tenant is not None else JobRow.id.is_not(None)
        statement = (
            update(JobRow)
            .where(JobRow.id == job_id, mine, JobRow.status.in_([s.value for s in ACTIVE]))
            .values(status=JobState.CANCELLED.value, finished_at=now, updated_at=now, stage="")
            .returning(JobRow.id)
        )
        async with self._sessions.begin() as session:
            changed = await session.scalar(statement) is not None
            row = await session.get(JobRow, job_id)
            if row is None or tenant not in (None, row.tenant):
                raise NotFound(f"job {job_id} not found")
            job = to_job(row)
        if job.status in (JobState.SUCCEEDED, JobState.FAILED):
            raise Conflict(f"job {job_id} already {job.status.value}; it cannot be cancelled")
        return job, changed

    async def stalled(self, state: JobState, updated_before: datetime, limit: int) -> list[Job]:
        """Published jobs in `state` that nothing updated since `updated_before`, oldest first."""
        async with self._sessions() as session:
            result = await session.execute(
                select(JobRow).where(JobRow.published_at.is_not(None), JobRow.status == state.value,
                                     JobRow.updated_at < updated_before).order_by(JobRow.updated_at).limit(limit))
            return [to_job(row) for row in result.scalars()]

    async def claim(self, job_id: str, state: JobState, updated_before: datetime, now: datetime) -> bool:
        """Touch a stalled job so that one sweep (of one replica) repairs it; False when it moved
        or another sweep took it meanwhile."""
        async with self._sessions.begin() as session:
            claimed = await session.scalar(
                update(JobRow).where(JobRow.id == job_id, JobRow.status == state.value,
                                     JobRow.updated_at < updated_before)
                .values(updated_at=now).returning(JobRow.id))
        return claimed is not None

    async def status_counts(self) -> dict[tuple[str, str], tuple[int, datetime]]:
        """(kind, status) -> (jobs, when the oldest was submitted)."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(JobRow.kind, JobRow.status, func.count(), func.min(JobRow.created_at))
                .group_by(JobRow.kind, JobRow.status))
            return {(kind, status): (count, oldest) for kind, status, count, oldest in rows}
