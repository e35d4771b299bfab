"""The reconciliation sweep: every record reaches a terminal state, so every event stream ends.

Each replica runs it every GATEWAY_SWEEP_INTERVAL_SECONDS:

1. progress events the consumer gave up on (its dead-letter queue) are applied again, now that
   the database may be back; records only move forward, so a late event is harmless;
2. a document or job still `queued` with no update for GATEWAY_SWEEP_QUEUED_SECONDS is
   published again (its message was lost, or is stuck behind a crash): the workers' effects are
   idempotent (the same chunk ids, the same image keys). One that is still queued
   GATEWAY_SWEEP_GIVE_UP_SECONDS after it was submitted is failed with the reason;
3. one `processing` / `running` with no progress for GATEWAY_SWEEP_RUNNING_SECONDS is failed
   with the reason (its worker died and its retries are spent, or its final event is gone).

A record is claimed (its `updated_at` touched in one conditional UPDATE) before it is repaired,
so replicas sweeping at once repair it once. A sweep that fails (database or broker down) is
logged and tried again at the next interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.clock import unix_seconds, utcnow
from gateway.documents.domain import Status
from gateway.documents.library import DocumentLibrary
from gateway.documents.store import Applied
from gateway.jobs.board import JobBoard
from gateway.progress import JobState, ProgressReport
from genai_common.errors import ServiceError

log = logging.getLogger(__name__)

BATCH = 200  # records of one kind and state repaired per sweep


@dataclass(frozen=True)
class Deadlines:
    queued: timedelta    # no update while queued -> published again
    running: timedelta   # no progress while processing/running -> failed
    give_up: timedelta   # still queued this long after submission -> failed


@dataclass
class SweepReport:
    replayed: int = 0      # dead-lettered progress events applied
    republished: int = 0   # records published again
    failed: int = 0        # records failed with a reason

    def __bool__(self) -> bool:
        return bool(self.replayed or self.republished or self.failed)


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:g} minutes"


class Reconciler:
    def __init__(self, documents: DocumentLibrary, jobs: JobBoard, replay_dead_letters: Callable[[], Awaitable[int]],
                 deadlines: Deadlines) -> None:
        self._documents, self._jobs = documents, jobs
        self._replay = replay_dead_letters
        self._deadlines = deadlines

    async def run(self, interval: float) -> None:
        """Sweep every `interval` seconds until cancelled (the first one interval after start)."""
        while True:
            await asyncio.sleep(interval)
            try:
                report = await self.sweep()
                if report:
                    log.warning("reconciliation sweep repaired records", extra=vars(report))
            except Exception as exc:  # the database or broker is down: the next sweep tries again
                log.warning("reconciliation sweep failed: %s", type(exc).__name__)

    async def sweep(self, now: datetime | None = None) -> SweepReport:
        now = now or utcnow()
        report = SweepReport(replayed=await self._replay())
        await self._sweep_documents(now, report)
        await self._sweep_jobs(now, report)
        return report

    async def _sweep_documents(self, now: datetime, report: SweepReport) -> None:
        d = self._deadlines
        cutoff = now - d.queued
        for document in await self._documents.stalled(Status.QUEUED, cutoff, BATCH):
            if unix_seconds(document.created_at) < (now - d.give_up).timestamp():
                reason = f"not picked up for processing within {_minutes(d.give_up)}"
                report.failed += await self._fail_document(document.id, reason)
            elif await self._try(self._documents.requeue(document, cutoff, now), document.id):
                report.republished += 1
        for document in await self._documents.stalled(Status.PROCESSING, now - d.running, BATCH):
            reason = f"no progress reported for {_minutes(d.running)}; upload it again"
            report.failed += await self._fail_document(document.id, reason)

    async def _sweep_jobs(self, now: datetime, report: SweepReport) -> None:
        d = self._deadlines
        cutoff = now - d.queued
        for job in await self._jobs.stalled(JobState.QUEUED, cutoff, BATCH):
            if unix_seconds(job.created_at) < (now - d.give_up).timestamp():
                reason = f"not picked up by a worker within {_minutes(d.give_up)}"
                report.failed += await self._jobs.apply(ProgressReport(job.id, JobState.FAILED, reason=reason))
            elif await self._try(self._jobs.requeue(job, cutoff, now), job.id):
                report.republished += 1
        for job in await self._jobs.stalled(JobState.RUNNING, now - d.running, BATCH):
            reason = f"no progress reported for {_minutes(d.running)}; submit it again"
            report.failed += await self._jobs.apply(ProgressReport(job.id, JobState.FAILED, reason=reason))

    async def _fail_document(self, document_id: str, reason: str) -> int:
        outcome = await self._documents.apply_progress(ProgressReport(document_id, JobState.FAILED, reason=reason))
        log.warning("document failed by the sweep: %s", reason, extra={"document_id": document_id})
        return int(outcome is Applied.APPLIED)

    @staticmethod
    async def _try(requeue: Awaitable[bool], record_id: str) -> bool:
        try:
            return await requeue
        except ServiceError as exc:  # the broker refused it (full, down): the next sweep tries again
            log.warning("could not publish a stalled record again: %s", exc.message, extra={"record_id": record_id})
            return False
