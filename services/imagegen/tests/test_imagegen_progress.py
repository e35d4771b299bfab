"""Progress: computed from steps, throttled, never decreasing, carried from a thread in order."""

from __future__ import annotations

import asyncio
import threading

from imagegen.domain import JobState, JobUpdate
from imagegen.progress import ProgressPump, ProgressThrottle, overall_progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_overall_progress_counts_every_step_of_every_image_and_stays_below_100() -> None:
    assert overall_progress(0, 0, 10, 2) == 0
    assert overall_progress(0, 10, 10, 2) == 50
    assert overall_progress(1, 5, 10, 2) == 75
    assert overall_progress(1, 10, 10, 2) == 99  # 100 only once the images are stored
    assert overall_progress(2, 0, 1, 3) == 66


def test_the_throttle_passes_big_moves_at_once_and_small_ones_after_the_interval() -> None:
    clock = Clock()
    throttle = ProgressThrottle(interval=0.5, min_delta=5, clock=clock)
    assert throttle.offer(2) is False  # small and too soon
    assert throttle.offer(5) is True  # moved 5 points
    clock.now = 0.1
    assert throttle.offer(7) is False
    clock.now = 0.7
    assert throttle.offer(7) is True  # the interval passed
    assert throttle.offer(20) is True


def test_the_throttle_never_passes_a_lower_or_equal_value() -> None:
    clock = Clock()
    throttle = ProgressThrottle(interval=0.0, min_delta=1, start=40, clock=clock)
    clock.now = 10
    assert [throttle.offer(v) for v in (10, 40, 39, 41, 41, 60, 50)] == [False, False, False, True, False, True, False]
    assert throttle.last == 60


class RecordingSink:
    def __init__(self, delay: float = 0.0) -> None:
        self.updates: list[JobUpdate] = []
        self._delay = delay

    async def report(self, update: JobUpdate) -> None:
        await asyncio.sleep(self._delay)
        self.updates.append(update)


async def test_the_pump_delivers_thread_updates_in_order_and_keeps_the_newest_when_behind() -> None:
    sink = RecordingSink(delay=0.01)
    async with ProgressPump(sink, asyncio.get_running_loop()) as pump:
        def produce() -> None:
            for value in range(1, 60):
                pump.submit_threadsafe(JobUpdate("j", JobState.RUNNING, value))

        thread = threading.Thread(target=produce)
        thread.start()
        await asyncio.to_thread(thread.join)
    values = [u.progress for u in sink.updates]
    assert values == sorted(set(values)) and values[-1] == 59
    assert len(values) < 59  # a slow sink got the newest, not every one
