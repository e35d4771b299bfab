"""Bound concurrent chats: `limit` run at once, up to `queue` more wait; beyond that, refuse.

A chat holds its slot from gathering its sources until its answer ends (the LLM's last token),
so the scrapes, searches and LLM calls in flight are all bounded, in retrieval-only mode too.

Refusing fast (429 + Retry-After) beats letting requests pile up behind a saturated model server:
the client can back off or go to another replica, and the gateway's memory stays bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Saturated(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("too many chat requests in flight; retry later")
        self.retry_after = retry_after


class ConcurrencyLimiter:
    def __init__(self, limit: int, queue: int, retry_after: int = 1) -> None:
        self._slots = asyncio.Semaphore(max(1, limit))
        self._queue = max(0, queue)
        self._waiting = 0
        self._retry_after = retry_after

    @property
    def waiting(self) -> int:
        return self._waiting

    async def acquire(self) -> None:
        """Take a slot, waiting behind at most `queue` others; raise Saturated when the queue is full."""
        if self._slots.locked() and self._waiting >= self._queue:
            raise Saturated(self._retry_after)
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1

    def release(self) -> None:
        self._slots.release()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()
