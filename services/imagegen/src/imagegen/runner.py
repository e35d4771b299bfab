"""Runs one image job: render each missing image off the loop, store it, report progress.

Idempotent under redelivery: images are stored under keys fixed by job and index, and an image
already stored is not rendered again, so a job that was interrupted (crash, shutdown) completes
with exactly `n` images. Only one render runs at a time per worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from typing import Protocol

from imagegen.domain import ImageJob, JobCancelled, JobState, JobUpdate, OutOfMemory, WorkerStopping
from imagegen.metrics import BUSY, IMAGES, JOB_SECONDS, STEP_SECONDS
from imagegen.progress import ProgressPump, ProgressSink, ProgressThrottle, overall_progress
from imagegen.renderer import StepHook

log = logging.getLogger(__name__)

STAGE = "denoising"


class Renderer(Protocol):
    def render(self, job: ImageJob, index: int, on_step: StepHook) -> bytes: ...


class Blobs(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...
    async def exists(self, key: str) -> bool: ...
    async def delete(self, key: str) -> None: ...


class RecentIds:
    """A bounded, thread-safe set of the most recent ids (cancelled jobs)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def add(self, item: str) -> None:
        with self._lock:
            self._ids[item] = None
            self._ids.move_to_end(item)
            while len(self._ids) > self._capacity:
                self._ids.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        with self._lock:
            return item in self._ids


class ImageJobRunner:
    def __init__(self, renderer: Renderer, blobs: Blobs, sink: ProgressSink, *,
                 progress_interval: float = 0.5, progress_min_delta: int = 5) -> None:
        self._renderer, self._blobs, self._sink = renderer, blobs, sink
        self._interval, self._min_delta = progress_interval, progress_min_delta
        self._one_at_a_time = asyncio.Semaphore(1)
        self._cancelled = RecentIds()
        self._stopping = threading.Event()

    def cancel(self, job_id: str) -> None:
        """Stop `job_id` at its next denoising step, or skip it when it arrives."""
        self._cancelled.add(job_id)

    def stop_now(self) -> None:
        """Shutdown grace is over: the render in progress stops at its next step (the job is requeued)."""
        self._stopping.set()

    async def run(self, job: ImageJob) -> JobState:
        """Render and store what is missing; returns the outcome. Raises WorkerStopping (requeue)."""
        if job.job_id in self._cancelled:
            await self._report(job, JobState.CANCELLED, 0, reason="cancelled before it started")
            return JobState.CANCELLED
        started = time.monotonic()
        BUSY.set(1)
        try:
            return await self._run(job, started)
        finally:
            BUSY.set(0)
            JOB_SECONDS.observe(time.monotonic() - started)

    async def _run(self, job: ImageJob, started: float) -> JobState:
        stored = [await self._blobs.exists(key) for key in job.image_keys]
        progress = overall_progress(sum(stored), 0, job.steps, job.n)
        await self._report(job, JobState.RUNNING, progress, stage=STAGE)
        try:
            await self._render_missing(job, stored, ProgressThrottle(self._interval, self._min_delta, start=progress))
        except JobCancelled:
            await asyncio.gather(*(self._blobs.delete(key) for key in job.image_keys))
            await self._report(job, JobState.CANCELLED, 0, reason="cancelled while running")
            return JobState.CANCELLED
        except OutOfMemory as exc:
            log.warning("job failed: %s", exc, extra={"job_id": job.job_id})
            await self._report(job, JobState.FAILED, 0, reason=str(exc))
            return JobState.FAILED
        elapsed = time.monotonic() - started
        await self._report(job, JobState.SUCCEEDED, 100, result_keys=tuple(job.image_keys),
                           stage_seconds={STAGE: elapsed})
        log.info("job succeeded", extra={"job_id": job.job_id, "images": job.n, "seconds": round(elapsed, 3)})
        return JobState.SUCCEEDED

    async def _render_missing(self, job: ImageJob, stored: list[bool], throttle: ProgressThrottle) -> None:
        done = sum(stored)
        async with ProgressPump(self._sink, asyncio.get_running_loop()) as pump:
            for index in range(job.n):
                if stored[index]:
                    continue
                hook = self._step_hook(job, done, throttle, pump)
                hook(0)  # a cancel or stop that came between two images
                async with self._one_at_a_time:
                    png = await asyncio.to_thread(self._renderer.render, job, index, hook)
                await self._blobs.put(job.image_key(index), png)
                IMAGES.inc()
                done += 1

    def _step_hook(self, job: ImageJob, done: int, throttle: ProgressThrottle, pump: ProgressPump) -> StepHook:
        """Runs on the render thread after each step: stop if asked, time the step, maybe report."""
        last = [time.monotonic()]

        def on_step(step: int) -> None:
            if self._stopping.is_set():
                raise WorkerStopping("worker is stopping")
            if job.job_id in self._cancelled:
                raise JobCancelled(job.job_id)
            if step == 0:
                return
            now = time.monotonic()
            if step > 1:  # the first step also encodes the prompt
                STEP_SECONDS.observe(now - last[0])
            last[0] = now
            value = overall_progress(done, step, job.steps, job.n)
            if throttle.offer(value):
                pump.submit_threadsafe(JobUpdate(job.job_id, JobState.RUNNING, value, stage=STAGE))

        return on_step

    async def _report(self, job: ImageJob, state: JobState, progress: int, *, stage: str = "", reason: str = "",
                      result_keys: tuple[str, ...] = (), stage_seconds: dict[str, float] | None = None) -> None:
        await self._sink.report(JobUpdate(job.job_id, state, progress, stage=stage, reason=reason,
                                          result_keys=result_keys, stage_seconds=stage_seconds or {}))
