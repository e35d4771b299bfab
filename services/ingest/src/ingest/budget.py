"""A bound on the bytes of the documents a worker holds at once, whatever their number.

A worker takes many documents from the queue (`INGEST_PREFETCH`) so that small ones can share
the retriever's model passes; their memory is bounded here instead: a document holds its file
size (read, extracted, chunked, indexed) from the moment it is read until it is done, and waits
while the documents in flight already hold `capacity` bytes. One document larger than the whole
budget runs alone. Grants are first come, first served, so a large document is not passed over
forever by a stream of small ones.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class ByteBudget:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._free = capacity
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    @property
    def free(self) -> int:
        return self._free

    @asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        """Hold `size` bytes (at least 1, at most the whole budget) for the block."""
        size = min(max(size, 1), self._capacity)
        await self._acquire(size)
        try:
            yield
        finally:
            self._release(size)

    async def _acquire(self, size: int) -> None:
        if not self._waiters and self._free >= size:
            self._free -= size
            return
        granted = asyncio.get_running_loop().create_future()
        waiter = (size, granted)
        self._waiters.append(waiter)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():  # granted as the caller left: give it back
                self._release(size)
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
                self._wake()  # the next one may fit now that this one no longer blocks the line
            raise

    def _release(self, size: int) -> None:
        self._free += size
        self._wake()

    def _wake(self) -> None:
        while self._waiters and (self._waiters[0][1].done() or self._waiters[0][0] <= self._free):
            size, granted = self._waiters.popleft()
            if not granted.done():  # a cancelled waiter is only dropped
                self._free -= size
                granted.set_result(None)
