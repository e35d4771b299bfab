"""genai_common.amqp against the real local RabbitMQ."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest

from genai.events.v1 import events_pb2
from genai_common.amqp import Amqp, PermanentFailure, QueueSpec, decode, delivery_count
from genai_common.errors import Unavailable



@pytest.fixture
async def amqp() -> AsyncIterator[Amqp]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    async with Amqp(os.environ["AMQP_URL"], name=name) as client:
        yield client


@pytest.fixture
def spec() -> QueueSpec:
    name = f"test.{uuid.uuid4().hex[:10]}"
    return QueueSpec(name, routing_keys=(f"{name}.key",), delivery_limit=2, prefetch=4)


async def _cleanup(spec: QueueSpec) -> None:
    connection = await aio_pika.connect(os.environ["AMQP_URL"])
    async with connection:
        channel = await connection.channel()
        for queue in (spec.name, f"{spec.name}.dlq"):
            await channel.queue_delete(queue)


async def _dlq_messages(spec: QueueSpec, expected: int, timeout: float = 15.0) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(os.environ["AMQP_URL"])
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{spec.name}.dlq")
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < expected and asyncio.get_running_loop().time() < deadline:
            message = await queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            got.append(message)
    return got


def _event(job_id: str) -> events_pb2.JobProgress:
    return events_pb2.JobProgress(job_id=job_id, kind=events_pb2.JOB_KIND_IMAGE, progress=10)


async def test_published_event_reaches_consumer_typed_and_is_acked(amqp: Amqp, spec: QueueSpec) -> None:
    received: asyncio.Queue[events_pb2.JobProgress] = asyncio.Queue()

    async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        assert message.content_type == "application/x-protobuf"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        await received.put(decode(message, events_pb2.JobProgress))

    try:
        consumer = await amqp.consume(spec, handler)
        await amqp.publish(spec.routing_keys[0], _event("job-1"))
        event = await asyncio.wait_for(received.get(), 10)
        assert event.job_id == "job-1" and event.progress == 10
        await consumer.stop(grace=5)
        declared = await amqp._publish_channel.declare_queue(spec.name, passive=True)  # type: ignore[union-attr]
        assert declared.declaration_result.message_count == 0
    finally:
        await _cleanup(spec)


async def test_permanent_failure_is_dead_lettered_at_once(amqp: Amqp, spec: QueueSpec) -> None:
    attempts = 0

    async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal attempts
        attempts += 1
        decode(message, events_pb2.DocumentUploaded)  # wrong type → PermanentFailure

    try:
        await amqp.consume(spec, handler)
        await amqp.publish(spec.routing_keys[0], _event("poison"))
        dead = await _dlq_messages(spec, 1)
        assert len(dead) == 1 and attempts == 1
        assert decode(dead[0], events_pb2.JobProgress).job_id == "poison"
    finally:
        await amqp.stop_consumers(5)
        await _cleanup(spec)


async def test_failing_handler_is_retried_then_dead_lettered_after_the_limit(amqp: Amqp, spec: QueueSpec) -> None:
    counts: list[int] = []

    async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        counts.append(delivery_count(message))
        raise RuntimeError("transient failure that never clears")

    try:
        await amqp.consume(spec, handler)
        await amqp.publish(spec.routing_keys[0], _event("flaky"))
        dead = await _dlq_messages(spec, 1)
        assert len(dead) == 1
        # delivery_limit=2: the first delivery plus two redeliveries, counted by the broker.
        assert counts == [0, 1, 2]
    finally:
        await amqp.stop_consumers(5)
        await _cleanup(spec)


async def test_unroutable_publish_is_refused_not_lost(amqp: Amqp) -> None:
    with pytest.raises(Unavailable):
        await amqp.publish(f"nobody.listens.{uuid.uuid4().hex}", _event("lost?"))


async def test_undecodable_body_is_a_permanent_failure() -> None:
    message = aio_pika.Message(body=b"\xff\xff\xff not protobuf", type="genai.events.v1.JobProgress")

    class Incoming:
        body, type, headers = message.body, message.type, {}

    with pytest.raises(PermanentFailure):
        decode(Incoming(), events_pb2.JobProgress)  # type: ignore[arg-type]


async def test_consumer_is_restored_after_the_connection_drops(spec: QueueSpec) -> None:
    name = f"test-reconnect-{uuid.uuid4().hex[:8]}"
    received: asyncio.Queue[str] = asyncio.Queue()

    async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await received.put(decode(message, events_pb2.JobProgress).job_id)

    async with Amqp(os.environ["AMQP_URL"], name=name) as amqp:
        try:
            await amqp.consume(spec, handler)
            await amqp.publish(spec.routing_keys[0], _event("before"))
            assert await asyncio.wait_for(received.get(), 10) == "before"
            _close_connection_named(name)
            deadline = asyncio.get_running_loop().time() + 30
            while asyncio.get_running_loop().time() < deadline:
                try:
                    await amqp.publish(spec.routing_keys[0], _event("after"))
                    break
                except Unavailable:
                    await asyncio.sleep(0.2)
            assert await asyncio.wait_for(received.get(), 20) == "after"
        finally:
            await amqp.stop_consumers(5)
            await _cleanup(spec)


def _close_connection_named(name: str) -> None:
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        check=True, capture_output=True, text=True,
    ).stdout
    pids = [line.split("\t", 1)[0] for line in listing.splitlines() if name in line]
    assert pids, f"connection {name} not found"
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "test: simulated broker drop"], check=True)


async def test_broadcast_reaches_every_replica_and_its_queue_goes_with_the_connection() -> None:
    key = f"test.broadcast.{uuid.uuid4().hex[:8]}"
    inboxes: list[asyncio.Queue[str]] = [asyncio.Queue(), asyncio.Queue()]

    def handler_for(inbox: asyncio.Queue[str]):  # type: ignore[no-untyped-def]
        async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await inbox.put(decode(message, events_pb2.JobProgress).job_id)
        return handler

    url = os.environ["AMQP_URL"]
    names = [f"test.replica.{uuid.uuid4().hex[:8]}" for _ in inboxes]
    async with Amqp(url, name="replica-a") as first, Amqp(url, name="replica-b") as second:
        for amqp, name, inbox in zip((first, second), names, inboxes):
            await amqp.consume_broadcast(name, (key,), handler_for(inbox))
        await first.publish(key, _event("cancel-me"))
        for inbox in inboxes:
            assert await asyncio.wait_for(inbox.get(), 10) == "cancel-me"
        await first.stop_consumers(5)
        await second.stop_consumers(5)
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for name in names:
            with pytest.raises(aio_pika.exceptions.ChannelClosed):
                await channel.declare_queue(name, passive=True)
            channel = await connection.channel()
