"""Documents and jobs by status, and the age of the oldest unfinished one, as gauges.

Read from the database every GATEWAY_STATS_INTERVAL_SECONDS (two GROUP BY queries), so a record
stuck in `queued` or `processing` shows on the dashboards and raises DocumentsStuck / JobsStuck.
Every replica reports the same database-wide numbers: queries aggregate them with max.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Protocol

from gateway.clock import utcnow
from gateway.metrics import (
    DOCUMENT_OLDEST_AGE,
    DOCUMENT_OPEN_STATUSES,
    DOCUMENT_STATUSES,
    DOCUMENTS,
    JOB_KINDS,
    JOB_OLDEST_AGE,
    JOB_OPEN_STATUSES,
    JOB_STATUSES,
    JOBS,
)

log = logging.getLogger(__name__)


class DocumentCounts(Protocol):
    async def status_counts(self) -> dict[str, tuple[int, datetime]]: ...


class JobCounts(Protocol):
    async def status_counts(self) -> dict[tuple[str, str], tuple[int, datetime]]: ...


def _age(oldest: datetime, now: datetime) -> float:
    if oldest.tzinfo is None:  # SQLite keeps no zone: the gateway writes UTC
        oldest = oldest.replace(tzinfo=UTC)
    return max(0.0, (now - oldest).total_seconds())


class RecordCounts:
    def __init__(self, documents: DocumentCounts, jobs: JobCounts, interval: float) -> None:
        self._documents = documents
        self._jobs = jobs
        self._interval = interval

    async def refresh(self) -> None:
        documents, jobs = await self._documents.status_counts(), await self._jobs.status_counts()
        now = utcnow()
        for status in DOCUMENT_STATUSES:
            count, oldest = documents.get(status, (0, None))
            DOCUMENTS.labels(status).set(count)
            if status in DOCUMENT_OPEN_STATUSES:
                DOCUMENT_OLDEST_AGE.labels(status).set(_age(oldest, now) if oldest else 0)
        for kind in JOB_KINDS:
            for status in JOB_STATUSES:
                count, oldest = jobs.get((kind, status), (0, None))
                JOBS.labels(kind, status).set(count)
                if status in JOB_OPEN_STATUSES:
                    JOB_OLDEST_AGE.labels(kind, status).set(_age(oldest, now) if oldest else 0)

    async def run(self) -> None:
        """Refresh until cancelled; a failed read is logged and tried again next time."""
        while True:
            try:
                await self.refresh()
            except Exception:
                log.warning("could not count documents and jobs for the metrics", exc_info=True)
            await asyncio.sleep(self._interval)
