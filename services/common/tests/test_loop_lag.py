"""The event-loop lag probe sees a blocked loop, and a free loop stays in the lowest buckets."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry

from genai_common.loop_lag import LoopLagProbe, lag_histogram


def _share_over(registry: CollectorRegistry, name: str, bound: str) -> tuple[float, float]:
    count = registry.get_sample_value(f"{name}_count") or 0.0
    within = registry.get_sample_value(f"{name}_bucket", {"le": bound}) or 0.0
    return count, count - within


async def test_a_blocked_loop_shows_as_lag_and_a_free_one_does_not() -> None:
    registry = CollectorRegistry()
    histogram = lag_histogram("test", registry)
    async with LoopLagProbe(histogram, interval=0.02):
        await asyncio.sleep(0.3)  # free: every wake-up on time
        free_count, free_late = _share_over(registry, "test_event_loop_lag_seconds", "0.1")
        time.sleep(0.4)  # noqa: ASYNC251 - the point: a handler that blocks the loop
        await asyncio.sleep(0.1)
    count, late = _share_over(registry, "test_event_loop_lag_seconds", "0.25")
    assert free_count >= 5 and free_late == 0
    assert late == 1 and count > free_count
    assert (registry.get_sample_value("test_event_loop_lag_seconds_sum") or 0) >= 0.35
