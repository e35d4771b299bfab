"""SQL access for document records (SQLAlchemy 2 async; one code path for SQLite and PostgreSQL).

Progress is applied with one conditional UPDATE, so concurrent or repeated events can only
move a record forward (status rank, then progress within `processing`), on either database.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.clock import utcnow
from gateway.documents.domain import RANK, Document, Page, ProgressUpdate, Status
from gateway.documents.tables import DocumentRow
from genai_common.errors import InvalidInput, NotFound


class Applied(enum.Enum):
    APPLIED = "applied"
    STALE = "stale"          # older than what the record already says
    TOMBSTONE = "tombstone"  # the document was deleted
    UNKNOWN = "unknown"      # no such record (another deployment's event, or never created)


_RANK_SQL = case({status.value: rank for status, rank in RANK.items()}, value=DocumentRow.status, else_=0)


def _visible(tenant: str) -> ColumnElement[bool]:
    """The tenant's documents that are shown: published, not deleted."""
    return and_(DocumentRow.tenant == tenant, DocumentRow.published.is_(True),
                DocumentRow.status != Status.DELETED.value)


def to_document(row: DocumentRow) -> Document:
    return Document(
        id=row.id, name=row.name, media_type=row.media_type, size_bytes=row.size_bytes, sha256=row.sha256,
        blob_key=row.blob_key, status=Status(row.status), stage=row.stage, progress=row.progress,
        reason=row.reason, pages=row.pages, chunks=row.chunks, stage_seconds=dict(row.stage_seconds or {}),
        created_at=row.created_at, updated_at=row.updated_at, tenant=row.tenant,
    )


class DocumentStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def insert(self, *, id: str, name: str, media_type: str, size_bytes: int, sha256: str,
                     blob_key: str, tenant: str) -> Document:
        now = utcnow()
        row = DocumentRow(id=id, tenant=tenant, name=name, media_type=media_type, size_bytes=size_bytes, sha256=sha256,
                          blob_key=blob_key, status=Status.QUEUED.value, stage="", progress=0, reason="",
                          pages=0, chunks=0, stage_seconds={}, published=False, vectors_purged=False,
                          created_at=now, updated_at=now)
        async with self._sessions.begin() as session:
            session.add(row)
        return to_document(row)

    async def mark_published(self, document_id: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(update(DocumentRow).where(DocumentRow.id == document_id).values(published=True))

    async def remove(self, document_id: str) -> None:
        """Forget a record whose upload did not complete (never acknowledged to the client)."""
        async with self._sessions.begin() as session:
            await session.execute(delete(DocumentRow).where(DocumentRow.id == document_id))

    async def get(self, tenant: str, document_id: str) -> Document:
        """The tenant's document; NotFound for another tenant's id as for an unknown one."""
        async with self._sessions() as session:
            row = await session.scalar(select(DocumentRow).where(DocumentRow.id == document_id, _visible(tenant)))
        if row is None:
            raise NotFound(f"no document with id {document_id}")
        return to_document(row)

    async def page(self, tenant: str, *, limit: int, after: str | None = None, offset: int = 0) -> Page:
        """The tenant's documents, newest first; `after` is the id of the last document of the previous page."""
        query = select(DocumentRow).where(_visible(tenant))
        async with self._sessions() as session:
            if after:
                anchor = await session.get(DocumentRow, after)
                if anchor is None or anchor.tenant != tenant:
                    raise InvalidInput("after: no document with this id")
                query = query.where(or_(DocumentRow.created_at < anchor.created_at,
                                        and_(DocumentRow.created_at == anchor.created_at, DocumentRow.id < anchor.id)))
            query = query.order_by(DocumentRow.created_at.desc(), DocumentRow.id.desc())
            rows = (await session.scalars(query.offset(offset).limit(limit + 1))).all()
        return Page([to_document(r) for r in rows[:limit]], has_more=len(rows) > limit)

    async def apply(self, change: ProgressUpdate) -> Applied:
        rank = RANK[change.status]
        forward = _RANK_SQL < rank
        if change.status is Status.PROCESSING:
            forward = or_(forward, and_(_RANK_SQL == rank, DocumentRow.progress <= change.progress))
        values: dict[str, object] = {"status": change.status.value, "progress": change.progress,
                                     "stage": change.stage, "updated_at": utcnow(), "published": True}
        if change.status in (Status.INDEXED, Status.FAILED):
            values.update(reason=change.reason if change.status is Status.FAILED else "")
        if change.pages or change.chunks:
            values.update(pages=change.pages, chunks=change.chunks)
        if change.stage_seconds:
            values["stage_seconds"] = dict(change.stage_seconds)
        async with self._sessions.begin() as session:
            moved = await session.scalar(update(DocumentRow).where(DocumentRow.id == change.document_id, forward)
                                         .values(**values).returning(DocumentRow.id))
            if moved is not None:
                return Applied.APPLIED
            status = await session.scalar(select(DocumentRow.status).where(DocumentRow.id == change.document_id))
        if status is None:
            return Applied.UNKNOWN
        return Applied.TOMBSTONE if status == Status.DELETED.value else Applied.STALE

    async def tombstone(self, tenant: str, document_id: str) -> Document:
        """Mark deleted (hidden at once); NotFound if unknown, another tenant's, or already deleted and purged."""
        async with self._sessions.begin() as session:
            row = await session.scalar(select(DocumentRow).where(DocumentRow.id == document_id,
                                                                 DocumentRow.tenant == tenant))
            if row is None or not row.published or (row.status == Status.DELETED.value and row.vectors_purged):
                raise NotFound(f"no document with id {document_id}")
            row.status, row.deleted_at, row.updated_at = Status.DELETED.value, utcnow(), utcnow()
        return to_document(row)

    async def mark_purged(self, document_id: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(DocumentRow).where(DocumentRow.id == document_id).values(vectors_purged=True))

    async def indexed_names(self, tenant: str, document_ids: Sequence[str]) -> dict[str, str]:
        """Names of the given documents of `tenant` that are indexed and not deleted."""
        if not document_ids:
            return {}
        async with self._sessions() as session:
            rows = await session.execute(select(DocumentRow.id, DocumentRow.name).where(
                DocumentRow.id.in_(set(document_ids)), DocumentRow.tenant == tenant,
                DocumentRow.status == Status.INDEXED.value))
        return {row.id: row.name for row in rows}

    async def stale_unpublished(self, older_than: timedelta) -> list[Document]:
        """Records whose upload never got its broker confirm (the process died in between)."""
        cutoff: datetime = utcnow() - older_than
        async with self._sessions() as session:
            rows = await session.scalars(select(DocumentRow).where(
                DocumentRow.published.is_(False), DocumentRow.created_at < cutoff).limit(1000))
            return [to_document(r) for r in rows]

    async def stalled(self, status: Status, updated_before: datetime, limit: int) -> list[Document]:
        """Published documents in `status` that nothing updated since `updated_before`, oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(select(DocumentRow).where(
                DocumentRow.published.is_(True), DocumentRow.status == status.value,
                DocumentRow.updated_at < updated_before).order_by(DocumentRow.updated_at).limit(limit))
            return [to_document(r) for r in rows]

    async def claim(self, document_id: str, status: Status, updated_before: datetime, now: datetime) -> bool:
        """Touch a stalled record so that one sweep (of one replica) repairs it; False when it
        moved or another sweep took it meanwhile."""
        async with self._sessions.begin() as session:
            claimed = await session.scalar(
                update(DocumentRow).where(DocumentRow.id == document_id, DocumentRow.status == status.value,
                                          DocumentRow.updated_at < updated_before)
                .values(updated_at=now).returning(DocumentRow.id))
        return claimed is not None

    async def status_counts(self) -> dict[str, tuple[int, datetime]]:
        """status -> (documents, when the oldest was uploaded), over the visible documents."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(DocumentRow.status, func.count(), func.min(DocumentRow.created_at))
                .where(DocumentRow.published.is_(True), DocumentRow.status != Status.DELETED.value)
                .group_by(DocumentRow.status))
            return {status: (count, oldest) for status, count, oldest in rows}
