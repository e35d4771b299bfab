"""How late the event loop runs what is due: a blocked loop misses AMQP heartbeats, gRPC
keepalives and probe answers, so a service measures it all the time, not only in a test.

A probe task sleeps `interval` seconds again and again and observes how much later than asked it
woke up (the lag every other callback on the loop saw at that moment) in a histogram the service
owns (`<service>_event_loop_lag_seconds`). The probe costs one wake-up per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from prometheus_client import REGISTRY, CollectorRegistry, Histogram

# From 1 ms (a healthy loop) to 10 s (heartbeats long missed); 0.1 is a bucket edge, so the share
# of lags over 100 ms can be read exactly from the histogram.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def lag_histogram(service: str, registry: CollectorRegistry = REGISTRY) -> Histogram:
    return Histogram(f"{service}_event_loop_lag_seconds", "How much later than due the event loop woke a "
                     "periodic probe", buckets=LAG_BUCKETS, registry=registry)


class LoopLagProbe:
    """`async with LoopLagProbe(histogram):` measures the running loop's lag until the block ends."""

    def __init__(self, histogram: Histogram, interval: float = 0.1) -> None:
        self._histogram = histogram
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLagProbe:
        self._task = asyncio.create_task(self._run(), name="event loop lag probe")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(self._interval)
            self._histogram.observe(max(0.0, time.monotonic() - asked - self._interval))
