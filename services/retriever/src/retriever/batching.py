"""Shared encodes: concurrent callers' texts go through the model together.

One encode call has a fixed cost (tokenising, the Python around the model, threads waking up)
that a document of two chunks pays in full. `EncodeBatcher` queues what callers ask for while
the model is busy and hands the next free slot everything waiting, up to `batch_size` texts, in
arrival order. An idle model starts at once: no caller ever waits for a batch to fill.

- A caller's texts come back in its own order, whoever else shared the encode.
- A caller that gives up (a deadline) leaves the queue; if its texts are already encoding, the
  slot stays held until the thread is done (a thread cannot be stopped), so abandoned encodes
  never pile up beyond `concurrency`.
- An encode that fails with several callers in it is tried again one caller at a time, so one
  caller's bad input fails that caller only.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Encode = Callable[[list[str]], np.ndarray]


@dataclass(eq=False)
class _Request:
    texts: list[str]
    future: asyncio.Future[np.ndarray]
    alone: bool = False  # retried on its own after a shared encode failed


class EncodeBatcher:
    def __init__(self, encode: Encode, *, batch_size: int, concurrency: int = 1,
                 observe: Callable[[float], None] | None = None) -> None:
        if batch_size < 1 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be >= 1")
        self._encode = encode
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._observe = observe
        self._queue: collections.deque[_Request] = collections.deque()
        self._running = 0

    async def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text. Callers with more than `batch_size` texts send them a batch at a time,
        so others (a search's query) get turns in between."""
        parts = []
        for start in range(0, len(texts), self._batch_size):
            parts.append(await self._submit(list(texts[start:start + self._batch_size])))
        return np.concatenate(parts)

    async def _submit(self, texts: list[str]) -> np.ndarray:
        request = _Request(texts, asyncio.get_running_loop().create_future())
        self._queue.append(request)
        self._dispatch()
        return await request.future  # cancelling the caller cancels the future: it leaves the queue

    def _dispatch(self) -> None:
        while self._running < self._concurrency:
            batch = self._take()
            if not batch:
                return
            self._start(batch)

    def _take(self) -> list[_Request]:
        """The waiting requests that fit in one encode, in arrival order (a retried one alone)."""
        batch: list[_Request] = []
        size = 0
        while self._queue:
            head = self._queue[0]
            if head.future.done():  # its caller gave up while it waited
                self._queue.popleft()
                continue
            if batch and (head.alone or batch[0].alone or size + len(head.texts) > self._batch_size):
                break
            batch.append(self._queue.popleft())
            size += len(head.texts)
        return batch

    def _start(self, batch: list[_Request]) -> None:
        texts = [text for request in batch for text in request.texts]
        started = time.perf_counter()
        self._running += 1
        try:
            encoding = asyncio.ensure_future(asyncio.to_thread(self._encode, texts))
        except BaseException:
            self._running -= 1
            raise

        def finished(task: asyncio.Future[np.ndarray]) -> None:
            self._running -= 1
            if task.cancelled():  # the loop is closing
                for request in batch:
                    request.future.cancel()
            elif (error := task.exception()) is not None:
                self._fail(batch, error)
            else:
                if self._observe is not None:
                    self._observe(time.perf_counter() - started)
                self._deliver(batch, task.result())
            self._dispatch()

        encoding.add_done_callback(finished)

    def _deliver(self, batch: list[_Request], vectors: np.ndarray) -> None:
        offset = 0
        for request in batch:
            rows = vectors[offset:offset + len(request.texts)]
            offset += len(request.texts)
            if not request.future.done():
                request.future.set_result(rows)

    def _fail(self, batch: list[_Request], error: BaseException) -> None:
        if len(batch) > 1:  # find whose texts failed: each again, on its own, first in line
            for request in reversed(batch):
                request.alone = True
                self._queue.appendleft(request)
            return
        if not batch[0].future.done():
            batch[0].future.set_exception(error)
