"""Fixtures of the ingest worker's tests: a fake retriever, the real consumer and pipeline wired as
`python -m ingest` wires them, on the session's RabbitMQ vhost (`rabbit_url`, root conftest)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import aio_pika
import pytest

from genai.events.v1 import events_pb2
from genai_common.amqp import Amqp, QueueSpec, RetryPolicy
from genai_common.blobs import FileBlobStore
from genai_common.errors import InvalidInput, Unavailable
from ingest.chunking import Chunk, ChunkingPolicy
from ingest.consumer import UploadConsumer
from ingest.extract import Extractor, PdfLimits
from ingest.pipeline import IngestPipeline
from ingest.progress import AmqpProgress
from tests.support.eventually import eventually


@dataclass
class FakeIndexer:
    """The retriever as the pipeline sees it: upserts by (document, chunk index)."""

    points: dict[tuple[str, int], Chunk] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    calls: int = 0
    fail: bool = False
    refuse: bool = False
    gate: asyncio.Event | None = None
    # The tenant each document was indexed for (the retriever filters searches on it).
    tenants: dict[str, str] = field(default_factory=dict)

    async def index(self, document_id: str, source_name: str, chunks: Sequence[Chunk],
                    tenant: str = "default") -> int:
        self.calls += 1
        self.tenants[document_id] = tenant
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise Unavailable("retriever: fake retriever is down")
        if self.refuse:
            raise InvalidInput("retriever: chunk text too long")
        for chunk in chunks:
            self.points[(document_id, chunk.index)] = chunk
        return len(chunks)

    async def delete_document(self, document_id: str) -> int:
        self.deleted.append(document_id)
        gone = [key for key in self.points if key[0] == document_id]
        for key in gone:
            del self.points[key]
        return len(gone)

    def chunks_of(self, document_id: str) -> list[Chunk]:
        return [c for (d, _), c in sorted(self.points.items()) if d == document_id]


@dataclass
class IngestRig:
    amqp: Amqp
    blobs: FileBlobStore
    indexer: FakeIndexer
    spec: QueueSpec
    channel: aio_pika.abc.AbstractChannel
    progress_queue: aio_pika.abc.AbstractQueue
    consumer: UploadConsumer
    events: list[events_pb2.JobProgress] = field(default_factory=list)

    async def start(self) -> None:
        await self.amqp.consume(replace(self.spec, on_give_up=self.consumer.give_up), self.consumer.handle)

    async def upload(self, document_id: str, data: bytes, media_type: str = "text/plain",
                     filename: str = "doc.txt") -> events_pb2.DocumentUploaded:
        key = f"documents/{document_id}"
        await self.blobs.put(key, data)
        event = events_pb2.DocumentUploaded(document_id=document_id, blob_key=key, filename=filename,
                                            media_type=media_type, sha256=hashlib.sha256(data).hexdigest(),
                                            size_bytes=len(data))
        await self.publish(event)
        return event

    async def publish(self, event: events_pb2.DocumentUploaded) -> None:
        await self.amqp.publish("document.uploaded", event, message_id=event.document_id,
                                headers={"document_id": event.document_id})

    async def publish_raw(self, body: bytes, headers: dict[str, str]) -> None:
        exchange = await self.channel.get_exchange("genai.events")
        await exchange.publish(aio_pika.Message(body, headers=headers, delivery_mode=2), "document.uploaded")

    async def wait_for(self, document_id: str, states: set[int], within: float = 30.0) -> events_pb2.JobProgress:
        """The first progress event for `document_id` in one of `states` (read off the capture queue)."""

        async def first_match() -> events_pb2.JobProgress | None:
            message = await self.progress_queue.get(fail=False, no_ack=True)
            if message is not None:
                self.events.append(events_pb2.JobProgress.FromString(message.body))
            return next((e for e in self.events if e.job_id == document_id and e.state in states), None)

        found = await eventually(first_match, lambda event: event is not None, within=within,
                                 what=f"progress in {states} for {document_id}")
        assert found is not None
        return found

    def history(self, document_id: str) -> list[events_pb2.JobProgress]:
        return [e for e in self.events if e.job_id == document_id]

    async def dead_letters(self, expected: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Take `expected` messages off the dead-letter queue (waiting for them to arrive)."""
        queue = await self.channel.get_queue(self.spec.dead_letter_queue)
        got: list[aio_pika.abc.AbstractIncomingMessage] = []

        async def take_one() -> int:
            message = await queue.get(fail=False, no_ack=True)
            if message is not None:
                got.append(message)
            return len(got)

        await eventually(take_one, lambda taken: taken >= expected, what=f"{expected} dead-lettered messages")
        return got

    async def ready_messages(self, queue: str | None = None) -> int:
        """Messages waiting in the work queue (or in `queue`, e.g. the dead-letter queue)."""
        declared = await self.channel.declare_queue(queue or self.spec.name, passive=True)
        return declared.declaration_result.message_count or 0


@pytest.fixture
async def ingest_rig(tmp_path: Path, rabbit_url: str) -> AsyncIterator[IngestRig]:
    name = f"test.ingest.{uuid.uuid4().hex[:8]}"
    spec = QueueSpec(name, routing_keys=("document.uploaded",), prefetch=2,
                     retry=RetryPolicy(attempts=3, first_delay_seconds=0.1, max_delay_seconds=0.2))
    async with Amqp(rabbit_url, name="ingest-test") as amqp:
        connection = await aio_pika.connect(rabbit_url)
        channel = await connection.channel()
        progress_queue = await channel.declare_queue(f"{name}.progress", exclusive=True)
        await progress_queue.bind("genai.events", routing_key="job.progress")
        blobs = FileBlobStore(tmp_path / "blobs")
        indexer = FakeIndexer()
        progress = AmqpProgress(amqp)
        pipeline = IngestPipeline(blobs, Extractor(PdfLimits(wall_seconds=30, cpu_seconds=20)), indexer, progress,
                                  policy=ChunkingPolicy(target_chars=300, overlap_chars=60, max_chars=500),
                                  batch_chunks=4)
        consumer = UploadConsumer(pipeline, progress)
        rig = IngestRig(amqp, blobs, indexer, spec, channel, progress_queue, consumer)
        try:
            yield rig
        finally:
            if indexer.gate is not None:
                indexer.gate.set()
            await amqp.stop_consumers(1.0)
            for queue in (name, spec.dead_letter_queue, *map(spec.retry_queue, spec.retry.tiers())):
                await channel.queue_delete(queue)
            await connection.close()
