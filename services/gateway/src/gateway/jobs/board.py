"""The job board: submit, look up, cancel, and apply what workers report.

No web framework, broker or protobuf here: requests come in as dataclasses, messages go out
through the `Publisher` protocol, records live behind `JobStore`. A request this deployment does
not allow raises `ValidationFailed` (422) naming the field; a blocked prompt `InvalidInput` (400).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Protocol

from gateway.jobs.domain import ImageRequest, Job, JobLimits, Kind, NewJob, Submission, TextRequest
from gateway.jobs.notify import JobWatchers
from gateway.jobs.prompt_filter import PromptFilter
from gateway.jobs.store import Idempotency, JobStore
from gateway.metrics import JOBS_FINISHED, JOBS_SUBMITTED
from gateway.progress import TERMINAL, JobState, ProgressReport
from genai_common.errors import InvalidInput, NotFound, ServiceError, Unavailable, ValidationFailed

log = logging.getLogger(__name__)

PUBLISH_CHUNK = 64  # publishes awaiting the broker's confirm at once, per batch


class Publisher(Protocol):
    async def image_job(self, job: Job) -> None: ...
    async def text_job(self, job: Job) -> None: ...
    async def cancel(self, job_id: str) -> None: ...


def _blocked(field: str) -> InvalidInput:
    return InvalidInput(f"{field} contains a blocked term", code="prompt_blocked", param=field)


def _invalid(field: str, message: str) -> ValidationFailed:
    """A value outside this deployment's limits."""
    return ValidationFailed(f"{field}: {message}", code="validation_error", param=field)


def request_hash(kind: Kind, request: ImageRequest | TextRequest) -> str:
    body = json.dumps({"kind": kind.value, **asdict(request)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def default_size(sizes: Sequence[str]) -> str:
    return "1024x1024" if "1024x1024" in sizes else sizes[0]


class JobBoard:
    def __init__(self, store: JobStore, publisher: Publisher, prompt_filter: PromptFilter, watchers: JobWatchers,
                 limits: JobLimits, *, text_enabled: bool) -> None:
        self._store, self._publisher, self._filter, self._watchers = store, publisher, prompt_filter, watchers
        self._limits = limits
        self._text_enabled = text_enabled

    @property
    def watchers(self) -> JobWatchers:
        return self._watchers

    def _image_params(self, request: ImageRequest) -> dict[str, object]:
        """The job's recorded parameters: defaults filled in, the seed drawn if none was given."""
        limits = self._limits
        size = request.size or default_size(limits.sizes)
        if size not in limits.sizes:
            raise _invalid("size", f"must be one of {', '.join(limits.sizes)}")
        if request.n > limits.max_images:
            raise _invalid("n", f"must be at most {limits.max_images}")
        steps = request.steps or min(limits.default_steps, limits.max_steps)
        if steps > limits.max_steps:
            raise _invalid("steps", f"must be at most {limits.max_steps}")
        for field in ("prompt", "negative_prompt"):
            if len(getattr(request, field)) > limits.max_prompt_chars:
                raise _invalid(field, f"must be at most {limits.max_prompt_chars} characters")
        if self._filter.blocked(request.prompt):
            raise _blocked("prompt")
        width, height = (int(side) for side in size.split("x"))
        seed = request.seed if request.seed is not None else secrets.randbelow(2**32)
        return {"prompt": request.prompt, "negative_prompt": request.negative_prompt, "n": request.n,
                "size": size, "width": width, "height": height, "steps": steps, "guidance": request.guidance,
                "seed": seed}

    async def submit_image(self, tenant: str, request: ImageRequest, idempotency_key: str | None) -> Submission:
        params = self._image_params(request)
        new = [NewJob(id=str(uuid.uuid4()), kind=Kind.IMAGE, params=params)]
        return await self._submit(tenant, Kind.IMAGE, new, request, idempotency_key)

    async def submit_text(self, tenant: str, request: TextRequest, idempotency_key: str | None) -> Submission:
        if not self._text_enabled:
            raise Unavailable("batch text needs a language model and none is configured (LLM_BASE_URL)",
                              code="llm_not_configured")
        if len(request.prompts) > self._limits.max_text_prompts:
            raise _invalid("prompts", f"at most {self._limits.max_text_prompts} per request")
        if request.max_tokens > self._limits.max_text_tokens:
            raise _invalid("max_tokens", f"must be at most {self._limits.max_text_tokens}")
        for index, prompt in enumerate(request.prompts):
            if len(prompt) > self._limits.max_prompt_chars:
                raise _invalid(f"prompts.{index}", f"must be at most {self._limits.max_prompt_chars} characters")
            if self._filter.blocked(prompt):
                raise _blocked(f"prompts.{index}")
        new = [NewJob(id=str(uuid.uuid4()), kind=Kind.TEXT,
                      params={"prompt": p, "max_tokens": request.max_tokens, "temperature": request.temperature})
               for p in request.prompts]
        return await self._submit(tenant, Kind.TEXT, new, request, idempotency_key)

    async def _submit(self, tenant: str, kind: Kind, new: list[NewJob], request: ImageRequest | TextRequest,
                      key: str | None) -> Submission:
        idempotency = Idempotency(key, request_hash(kind, request)) if key else None
        jobs, created = await self._store.create(new, idempotency, tenant)
        if not created:
            return Submission(jobs, created=False)
        try:
            await self._publish(jobs)
        except ServiceError:
            # Not queued: withdraw the records so a retry (even with the same key) starts clean.
            # Jobs already published cannot be taken back; their worker finds no record and drops them.
            await self._store.withdraw([job.id for job in jobs])
            raise
        await self._store.mark_published([job.id for job in jobs])
        JOBS_SUBMITTED.labels(kind.value).inc(len(jobs))
        return Submission(jobs, created=True)

    async def _publish(self, jobs: Sequence[Job]) -> None:
        """Publish a batch at once (the broker's confirms are awaited together, not one round trip
        per job), PUBLISH_CHUNK at a time; every publish has finished when the first error is raised."""
        for start in range(0, len(jobs), PUBLISH_CHUNK):
            outcomes = await asyncio.gather(
                *(self._publisher.image_job(job) if job.kind == Kind.IMAGE else self._publisher.text_job(job)
                  for job in jobs[start:start + PUBLISH_CHUNK]),
                return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome

    async def republish_stale(self, older_than: timedelta = timedelta(seconds=60), limit: int = 1000) -> int:
        """Queue the jobs a stopped gateway recorded but never published (run at start). The age
        keeps it clear of submissions another replica is publishing right now."""
        stale = await self._store.unpublished(older_than, limit)
        if not stale:
            return 0
        try:
            await self._publish(stale)
        except ServiceError as exc:
            log.warning("could not republish unqueued jobs: %s", exc.message)
            return 0
        await self._store.mark_published([job.id for job in stale])
        log.warning("republished %d jobs that were recorded but never queued", len(stale))
        return len(stale)

    async def stalled(self, state: JobState, updated_before: datetime, limit: int) -> list[Job]:
        return await self._store.stalled(state, updated_before, limit)

    async def requeue(self, job: Job, updated_before: datetime, now: datetime) -> bool:
        """Publish a job nobody picked up again (its worker applies it once: results are keyed by
        job); False when it moved meanwhile. Raises Unavailable when the broker refuses it."""
        if not await self._store.claim(job.id, job.status, updated_before, now):
            return False
        await self._publish([job])
        return True

    async def get(self, tenant: str, job_id: str) -> Job:
        """The tenant's job; NotFound for another tenant's id as for an unknown one."""
        job = await self._store.get(job_id, tenant)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        return job

    async def find(self, job_id: str) -> Job | None:
        """Any tenant's job: for the gateway's own readers (an event stream whose job was checked)."""
        return await self._store.get(job_id)

    async def lookup(self, tenant: str, job_ids: Sequence[str]) -> dict[str, Job]:
        return await self._store.get_many(job_ids, tenant)

    async def recent(self, tenant: str, limit: int) -> list[Job]:
        return await self._store.recent(limit, tenant)

    async def cancel(self, tenant: str, job_id: str) -> Job:
        """Queued -> cancelled at once; running -> cancelled now, and the worker stops at its next
        step; already cancelled -> unchanged; succeeded or failed -> Conflict; another tenant's -> NotFound."""
        job, changed = await self._store.cancel(job_id, tenant)
        if changed:
            JOBS_FINISHED.labels(job.kind.value, JobState.CANCELLED.value).inc()
            self._watchers.notify(job_id)
            if job.kind == Kind.IMAGE:
                await self._stop_worker(job_id)
        return job

    async def _stop_worker(self, job_id: str) -> None:
        try:
            await self._publisher.cancel(job_id)
        except ServiceError as exc:  # the record is cancelled either way; the worker's results are ignored
            log.warning("cancel not broadcast to workers: %s", exc.message, extra={"job_id": job_id})

    async def apply(self, change: ProgressReport) -> bool:
        """Apply a worker's report if it moves the job forward (idempotent); wakes event streams."""
        kind = await self._store.apply(change)
        if kind is None:
            return False
        if change.state in TERMINAL:
            JOBS_FINISHED.labels(kind.value, change.state.value).inc()
        self._watchers.notify(change.job_id)
        return True
