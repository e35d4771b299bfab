"""Wait for a condition a test cannot be told about directly (a record another process writes, a
queue that drains), checking it often and failing with the last value it saw."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], T | Awaitable[T]], until: Callable[[T], bool] = bool, *,
                     within: float = 15.0, every: float = 0.02, what: str = "condition") -> T:
    """Call `probe` (sync or async) until `until(value)` holds; return that value.

    Raises AssertionError after `within` seconds, naming `what` and the last value seen.
    """
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if until(value):  # type: ignore[arg-type]
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {within} s; last value: {value!r}")
        await asyncio.sleep(every)
