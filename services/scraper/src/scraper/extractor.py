"""Runs extraction in a process pool, off the event loop, in adaptive batches.

At most `workers` batches are in the pool at once (a semaphore in effect); pages that arrive
while every worker is busy wait here and leave together, up to `max_batch` per task, when a
worker frees up. One page alone goes at once; a burst of 100 costs a few round trips to the
pool instead of 100. Pages whose caller gave up (deadline) are dropped before they are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Protocol

from scraper.extract import Extracted, extract_batch, warm_up

Job = tuple[tuple[bytes, str, str, str | None], asyncio.Future[Extracted]]


class ExtractionFailed(Exception):
    pass


class TextExtractor(Protocol):
    async def extract(self, body: bytes, url: str, media_type: str, charset: str | None) -> Extracted: ...


def process_pool(workers: int) -> ProcessPoolExecutor:
    """Fresh interpreters ("spawn"): forking a process that runs gRPC threads is unsafe."""
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=warm_up
    )


class PoolExtractor:
    def __init__(self, pool: Executor, *, workers: int, max_batch: int = 16) -> None:
        self._pool = pool
        self._workers = workers
        self._max_batch = max_batch
        self._pending: deque[Job] = deque()
        self._running = 0

    async def warm(self) -> None:
        """Start every worker now (imports, first extraction) instead of on the first request."""
        await asyncio.gather(*(
            asyncio.wrap_future(self._pool.submit(extract_batch, [(b"<p>warm</p>", "http://localhost/", "text/html", None)]))
            for _ in range(self._workers)
        ))

    async def extract(self, body: bytes, url: str, media_type: str, charset: str | None) -> Extracted:
        future: asyncio.Future[Extracted] = asyncio.get_running_loop().create_future()
        self._pending.append(((body, url, media_type, charset), future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._pending and self._running < self._workers:
            batch: list[Job] = []
            while self._pending and len(batch) < self._max_batch:
                job = self._pending.popleft()
                if not job[1].done():  # skip pages whose caller was cancelled
                    batch.append(job)
            if not batch:
                return
            self._submit(batch)

    def _submit(self, batch: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        try:
            submitted = self._pool.submit(extract_batch, [args for args, _ in batch])
        except RuntimeError as exc:  # the pool is shut down or broken
            self._settle(batch, exc)
            return
        self._running += 1

        def _done(result: Future[list[Extracted | str]]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(self._finished, result, batch)

        submitted.add_done_callback(_done)

    def _finished(self, result: Future[list[Extracted | str]], batch: list[Job]) -> None:
        self._running -= 1
        error = result.exception()
        self._settle(batch, error, None if error else result.result())
        self._dispatch()

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
