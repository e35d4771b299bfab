"""The chunks of every document in flight, sent to the retriever together.

Small documents (an abstract, a note: one or two chunks) each cost the retriever one model pass
when they are indexed one call apiece, and a model pass over two texts is far slower per text
than one over thirty. `IndexBatcher` stands where the pipeline's indexer stood: each document's
`index` call waits while the retriever is busy with earlier calls, and the parts that waited go
out together in one `IndexBatch` call (at most `max_chunks` chunks), as soon as a call slot is
free. Nothing lingers on a timer: a lone document is sent at once, and batches grow only when
documents arrive faster than the retriever embeds them.

Each caller still learns its own outcome: its chunk count once the call that carried it is
committed, `InvalidInput` when the retriever refused its part, or the call's error (retriever
unavailable, deadline) so that its message is retried with back-off, as before.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from genai_common.errors import InvalidInput, Unavailable
from ingest import metrics
from ingest.chunking import Chunk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexPart:
    """One document's chunks (all of them, or one slice of a large document)."""

    document_id: str
    source_name: str
    chunks: Sequence[Chunk]
    tenant: str = "default"


class BatchIndexer(Protocol):
    async def index_batch(self, parts: Sequence[IndexPart]) -> list[int | InvalidInput]: ...
    async def delete_document(self, document_id: str) -> int: ...


@dataclass
class _Waiting:
    part: IndexPart
    outcome: asyncio.Future[int] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class IndexBatcher:
    """The pipeline's `Indexer`: `index` calls of concurrent documents share `IndexBatch` calls.

    `max_calls` calls are in flight at most. One is the default: the documents of a call in flight
    hold their queue messages (acked only once committed), so every further call in flight would
    take documents away from the next batch; and the retriever embeds one call at a time on a CPU
    anyway, so a second call would only wait there. The gap between two calls is a round trip.
    """

    def __init__(self, indexer: BatchIndexer, *, max_chunks: int, max_calls: int = 1) -> None:
        if max_chunks < 1 or max_calls < 1:
            raise ValueError("max_chunks and max_calls must be >= 1")
        self._indexer = indexer
        self._max_chunks = max_chunks
        self._max_calls = max_calls
        self._waiting: collections.deque[_Waiting] = collections.deque()
        self._calls: set[asyncio.Task[None]] = set()
        self._send_scheduled = False

    async def index(self, document_id: str, source_name: str, chunks: Sequence[Chunk],
                    tenant: str = "default") -> int:
        """Chunks indexed once committed; raises `InvalidInput` (refused) or the call's error."""
        entry = _Waiting(IndexPart(document_id, source_name, chunks, tenant))
        self._waiting.append(entry)
        self._schedule()
        try:
            return await entry.outcome  # cancelled with its caller: a call in flight then skips it
        except asyncio.CancelledError:
            if entry in self._waiting:  # not sent yet: it must not be sent for a caller who left
                self._waiting.remove(entry)
            raise

    async def delete_document(self, document_id: str) -> int:
        return await self._indexer.delete_document(document_id)

    async def aclose(self) -> None:
        """Wait for the calls in flight (their callers are waiting for them anyway)."""
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)

    def _schedule(self) -> None:
        """Send at the end of this loop turn, so parts that arrive in the same turn share the call."""
        if not self._send_scheduled:
            self._send_scheduled = True
            asyncio.get_running_loop().call_soon(self._send)

    def _send(self) -> None:
        self._send_scheduled = False
        while self._waiting and len(self._calls) < self._max_calls:
            batch = self._take()
            call = asyncio.create_task(self._call(batch))
            self._calls.add(call)
            call.add_done_callback(self._finished)

    def _take(self) -> list[_Waiting]:
        """The oldest waiting parts, up to `max_chunks` chunks (always at least one part)."""
        batch = [self._waiting.popleft()]
        chunks = len(batch[0].part.chunks)
        while self._waiting and chunks + len(self._waiting[0].part.chunks) <= self._max_chunks:
            entry = self._waiting.popleft()
            chunks += len(entry.part.chunks)
            batch.append(entry)
        return batch

    def _finished(self, call: asyncio.Task[None]) -> None:
        self._calls.discard(call)
        if self._waiting:
            self._schedule()

    async def _call(self, batch: list[_Waiting]) -> None:
        metrics.INDEX_CALL_DOCUMENTS.observe(len(batch))
        metrics.INDEX_CALL_CHUNKS.observe(sum(len(e.part.chunks) for e in batch))
        try:
            outcomes = await self._indexer.index_batch([e.part for e in batch])
            if len(outcomes) != len(batch):
                raise Unavailable(f"retriever: {len(outcomes)} results for {len(batch)} documents")
        except asyncio.CancelledError:
            for entry in batch:
                entry.outcome.cancel()
            raise
        except Exception as exc:  # every part of the call shares its fate: each message is retried
            for entry in batch:
                if not entry.outcome.done():
                    entry.outcome.set_exception(exc)
            return
        for entry, outcome in zip(batch, outcomes, strict=True):
            if entry.outcome.done():
                continue
            if isinstance(outcome, InvalidInput):
                entry.outcome.set_exception(outcome)
            else:
                entry.outcome.set_result(outcome)
