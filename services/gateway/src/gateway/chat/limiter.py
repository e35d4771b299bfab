"""Bound concurrent chats: `limit` run at once, up to `queue` more wait; beyond that, refuse.

A chat holds its slot from gathering its sources until its answer ends (the LLM's last token),
so the scrapes, searches and LLM calls in flight are all bounded. Chats answered by the LLM
share one limiter (LLM_MAX_CONCURRENCY, LLM_MAX_QUEUE); without an LLM, retrieval-only chats have
one of their own (GATEWAY_RETRIEVAL_ONLY_MAX_CONCURRENCY).

Refusing fast (429 + Retry-After) beats letting requests pile up behind a saturated model server:
the client can back off or go to another replica, and the gateway's memory stays bounded.
"""

from __future__ import annotations

import asyncio

from genai_common.errors import Saturated


class ConcurrencyLimiter:
    def __init__(self, limit: int, queue: int, retry_after: float = 1.0) -> None:
        self._slots = asyncio.Semaphore(max(1, limit))
        self._queue = max(0, queue)
        self._waiting = 0
        self._held = 0
        self._retry_after = retry_after

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def in_flight(self) -> int:
        return self._held

    async def acquire(self) -> None:
        """Take a slot, waiting behind at most `queue` others; raise Saturated when the queue is full."""
        if self._slots.locked() and self._waiting >= self._queue:
            raise Saturated("too many chat requests in flight; retry later", retry_after=self._retry_after,
                            code="gateway_overloaded")
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self._held += 1

    def release(self) -> None:
        self._held -= 1
        self._slots.release()
