"""Runs extraction in a process pool, off the event loop, in adaptive batches.

At most `workers` batches are in the pool at once (a semaphore in effect); pages that arrive
while every worker is busy wait here and leave together, up to `max_batch` per task, when a
worker frees up. Pages are sent at the end of the event loop's turn they arrived in, so the pages
of a burst (a fan-out's responses come back together) leave together even when the workers are
idle, split evenly over the free workers: a burst of 100 costs a few round trips to the pool
instead of 100 (each round trip costs about 0.3 ms of CPU in the pool's threads and pipes, more
than extracting a small page). One page alone still goes at once. Pages whose caller gave up
(deadline) are dropped before they are sent.
A worker that dies (killed, out of memory) breaks a process pool for good: with `renew` given,
the broken pool is replaced by a fresh one, so only the pages of the crashed batch fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, Future, ProcessPoolExecutor
from pathlib import Path
from typing import Protocol

from scraper.extract import Extracted, extract_batch, warm_up

log = logging.getLogger(__name__)

Job = tuple[tuple[bytes, str, str, str | None], asyncio.Future[Extracted]]
WARM_UP_PAGE = (b"<p>warm</p>", "http://localhost/", "text/html", None)


class ExtractionFailed(Exception):
    pass


class TextExtractor(Protocol):
    async def extract(self, body: bytes, url: str, media_type: str, charset: str | None) -> Extracted: ...


def available_cpus(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a container's
    CPU limit, which `os.cpu_count()` does not see)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
        if quota != "max":
            count = min(count, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, count)


def process_pool(workers: int, page_seconds: float = 0.0) -> ProcessPoolExecutor:
    """Fresh interpreters ("spawn"): forking a process that runs gRPC threads is unsafe.
    `page_seconds` > 0 limits the time one page may take in a worker."""
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=warm_up,
        initargs=(page_seconds,),
    )


class PoolExtractor:
    def __init__(self, pool: Executor, *, workers: int, max_batch: int = 16,
                 renew: Callable[[], Executor] | None = None) -> None:
        self._pool = pool
        self._workers = workers
        self._max_batch = max_batch
        self._renew = renew
        self._pending: deque[Job] = deque()
        self._running = 0
        self._dispatch_due = False

    async def aclose(self) -> None:
        """Shut the current pool down (waiting for its workers), dropping batches not started."""
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)

    async def warm(self) -> None:
        """Start every worker now (imports, first extraction) instead of on the first request."""
        await asyncio.gather(*(
            asyncio.wrap_future(self._pool.submit(extract_batch, [WARM_UP_PAGE]))
            for _ in range(self._workers)
        ))

    async def extract(self, body: bytes, url: str, media_type: str, charset: str | None) -> Extracted:
        future: asyncio.Future[Extracted] = asyncio.get_running_loop().create_future()
        self._pending.append(((body, url, media_type, charset), future))
        if not self._dispatch_due:  # once per turn of the loop, after every page of the turn came in
            self._dispatch_due = True
            asyncio.get_running_loop().call_soon(self._dispatch_now)
        return await future

    def _dispatch_now(self) -> None:
        self._dispatch_due = False
        self._dispatch()

    def _dispatch(self) -> None:
        while self._pending and self._running < self._workers:
            size = min(self._max_batch, -(-len(self._pending) // (self._workers - self._running)))
            batch: list[Job] = []
            while self._pending and len(batch) < size:
                job = self._pending.popleft()
                if not job[1].done():  # skip pages whose caller was cancelled
                    batch.append(job)
            if not batch:
                return
            self._submit(batch)

    def _submit(self, batch: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        try:
            submitted = self._send([args for args, _ in batch])
        except RuntimeError as exc:  # the pool is shut down, or broken and not renewable
            self._settle(batch, exc)
            return
        self._running += 1
        pool = self._pool

        def _done(result: Future[list[Extracted | str]]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(self._finished, result, batch, pool)

        submitted.add_done_callback(_done)

    def _send(self, pages: list[tuple[bytes, str, str, str | None]]) -> Future[list[Extracted | str]]:
        try:
            return self._pool.submit(extract_batch, pages)
        except BrokenExecutor:  # broken since the last batch finished: renew once and retry
            if not self._replace_broken(self._pool):
                raise
            return self._pool.submit(extract_batch, pages)

    def _finished(self, result: Future[list[Extracted | str]], batch: list[Job], pool: Executor) -> None:
        self._running -= 1
        error = asyncio.CancelledError() if result.cancelled() else result.exception()
        if isinstance(error, BrokenExecutor):
            self._replace_broken(pool)
        self._settle(batch, error, None if error else result.result())
        self._dispatch()

    def _replace_broken(self, broken: Executor) -> bool:
        """Swap a broken pool for a fresh one (once per breakage); False when it cannot be renewed."""
        if self._renew is None:
            return False
        if broken is self._pool:
            log.error("an extraction worker died; starting a fresh pool")
            self._pool = self._renew()
            broken.shutdown(wait=False, cancel_futures=True)
        return True

    @staticmethod
    def _settle(batch: list[Job], error: BaseException | None, results: list[Extracted | str] | None = None) -> None:
        for index, (_, future) in enumerate(batch):
            if future.done():
                continue
            outcome = results[index] if results is not None else f"extraction pool failed: {error!r}"
            if isinstance(outcome, Extracted):
                future.set_result(outcome)
            else:
                future.set_exception(ExtractionFailed(outcome))
