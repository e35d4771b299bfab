"""Stand-ins for the workers on the private broker (the real ingest needs the embedding model):
FakeIngest consumes `document.uploaded` through genai_common.amqp, the same consumer and retry
policy as ingest, and reports `job.progress` as ingest does. Its effects are keyed like the
real ones (deterministic chunk ids per document), and it counts every delivery, so a scenario
can tell a redelivery (harmless) from a duplicated effect."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

from aio_pika.abc import AbstractIncomingMessage

from genai.events.v1 import events_pb2
from genai_common.amqp import DOCUMENT_UPLOADED, JOB_PROGRESS, Amqp, QueueSpec, RetryPolicy, decode

CHUNKS_PER_DOCUMENT = 2
INGEST_QUEUE = "ingest.document-uploaded"


def expected_chunks(document_id: str) -> set[str]:
    return {f"{document_id}:{index}" for index in range(CHUNKS_PER_DOCUMENT)}


class FakeIngest:
    def __init__(self, amqp_url: str, *, max_length: int | None = None) -> None:
        self._amqp = Amqp(amqp_url, name="fake-ingest")
        self.spec = QueueSpec(INGEST_QUEUE, (DOCUMENT_UPLOADED,), prefetch=8, max_length=max_length,
                              retry=RetryPolicy(attempts=20, budget_seconds=300, first_delay_seconds=0.5,
                                                max_delay_seconds=4))
        self.deliveries: Counter[str] = Counter()
        self.chunks: defaultdict[str, list[str]] = defaultdict(list)  # every chunk write, in order

    async def connect(self) -> FakeIngest:
        await self._amqp.connect()
        await self._amqp.declare_queue(self.spec)
        return self

    async def start(self) -> None:
        await self._amqp.consume(self.spec, self._handle)

    async def close(self) -> None:
        await self._amqp.stop_consumers(5)
        await self._amqp.close()

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        event = decode(message, events_pb2.DocumentUploaded)
        self.deliveries[event.document_id] += 1
        await asyncio.sleep(0.01)  # the work
        stored = set(self.chunks[event.document_id])
        # An upsert by chunk id, as the retriever does: a redelivery rewrites, never adds.
        self.chunks[event.document_id].extend(sorted(expected_chunks(event.document_id) - stored))
        await self._amqp.publish(JOB_PROGRESS, events_pb2.JobProgress(
            kind=events_pb2.JOB_KIND_DOCUMENT, job_id=event.document_id, state=events_pb2.JOB_STATE_SUCCEEDED,
            progress=100, pages=1, chunks=CHUNKS_PER_DOCUMENT))

    def duplicated(self) -> int:
        """Documents whose chunk writes are not exactly their expected chunk ids, once each."""
        return sum(1 for doc, writes in self.chunks.items()
                   if len(writes) != len(set(writes)) or set(writes) != expected_chunks(doc))
