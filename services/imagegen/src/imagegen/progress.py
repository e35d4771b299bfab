"""Progress from the denoising thread to the event loop: throttled, never decreasing, in order."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

from genai_common.errors import ServiceError
from imagegen.domain import JobUpdate

log = logging.getLogger(__name__)


class ProgressSink(Protocol):
    async def report(self, update: JobUpdate) -> None: ...


def overall_progress(done_images: int, step: int, steps: int, n: int) -> int:
    """Percent of all denoising steps of the job finished; 99 at most until the results are stored."""
    finished = done_images * steps + step
    return min(99, math.floor(100 * finished / (n * steps)))


class ProgressThrottle:
    """Passes a value on only if it is higher than the last one passed, and either `min_delta`
    points higher or `interval` seconds later. Not thread-safe: one thread offers values."""

    def __init__(self, interval: float, min_delta: int, *, start: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._interval, self._min_delta, self._clock = interval, min_delta, clock
        self._last_value = start
        self._last_time = clock()

    @property
    def last(self) -> int:
        return self._last_value

    def offer(self, value: int) -> bool:
        if value <= self._last_value:
            return False
        now = self._clock()
        if value - self._last_value >= self._min_delta or now - self._last_time >= self._interval:
            self._last_value, self._last_time = value, now
            return True
        return False


class ProgressPump:
    """Carries updates submitted from any thread to `sink` on the loop, one at a time and in order;
    when several are waiting only the newest is sent. Progress is best effort: a failed report is
    logged and the job goes on (the terminal update is sent by the caller, not through the pump)."""

    def __init__(self, sink: ProgressSink, loop: asyncio.AbstractEventLoop) -> None:
        self._sink, self._loop = sink, loop
        self._latest: JobUpdate | None = None  # one slot: a newer update replaces one not sent yet
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def submit_threadsafe(self, update: JobUpdate) -> None:
        try:
            self._loop.call_soon_threadsafe(self._offer, update)
        except RuntimeError:  # the loop is closed: the process is going away
            pass

    def _offer(self, update: JobUpdate) -> None:
        self._latest = update
        self._wake.set()

    async def __aenter__(self) -> ProgressPump:
        self._task = asyncio.create_task(self._drain(), name="progress-pump")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        self._wake.set()
        assert self._task is not None
        await self._task

    async def _drain(self) -> None:
        while True:
            if self._latest is None:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            latest, self._latest = self._latest, None
            await self._send(latest)

    async def _send(self, update: JobUpdate) -> None:
        try:
            await self._sink.report(update)
        except ServiceError as exc:
            log.warning("progress update not sent: %s", exc.message, extra={"job_id": update.job_id})
