"""genai_common.amqp against the real local RabbitMQ."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import aio_pika
import pytest

from genai.events.v1 import events_pb2
from genai_common.amqp import Amqp, PermanentFailure, QueueSpec, RetryPolicy, attempt, decode
from genai_common.amqp.codec import FIRST_FAILURE_HEADER, LAST_ERROR_HEADER
from genai_common.errors import InvalidInput, Unavailable
from tests.support.eventually import eventually

FAST_RETRIES = RetryPolicy(attempts=3, first_delay_seconds=0.2, max_delay_seconds=0.4)
SLOW_RETRIES = RetryPolicy(attempts=3, first_delay_seconds=1.0, max_delay_seconds=1.0)


@pytest.fixture
async def amqp(rabbit_url: str) -> AsyncIterator[Amqp]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    async with Amqp(rabbit_url, name=name) as client:
        yield client


@pytest.fixture
async def spec(rabbit_url: str) -> AsyncIterator[QueueSpec]:
    """A queue spec of its own; its queues are deleted after the test."""
    name = f"test.{uuid.uuid4().hex[:10]}"
    queue_spec = QueueSpec(name, routing_keys=(f"{name}.key",), prefetch=4, retry=FAST_RETRIES)
    yield queue_spec
    async with await aio_pika.connect(rabbit_url) as connection:
        channel = await connection.channel()
        for retry in (FAST_RETRIES, SLOW_RETRIES):
            for queue in (name, queue_spec.dead_letter_queue, *map(queue_spec.retry_queue, retry.tiers())):
                await channel.queue_delete(queue)


async def _dlq_messages(url: str, spec: QueueSpec, expected: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take (and ack) `expected` messages off the spec's dead-letter queue."""
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with await aio_pika.connect(url) as connection:
        queue = await (await connection.channel()).get_queue(spec.dead_letter_queue)

        async def take_one() -> int:
            message = await queue.get(fail=False)
            if message is not None:
                await message.ack()
                got.append(message)
            return len(got)

        await eventually(take_one, lambda taken: taken >= expected, within=30,
                         what=f"{expected} dead-lettered messages")
    return got


async def _ready(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0


def _event(job_id: str) -> events_pb2.JobProgress:
    return events_pb2.JobProgress(job_id=job_id, kind=events_pb2.JOB_KIND_IMAGE, progress=10)


async def test_published_event_reaches_consumer_typed_and_is_acked(
        amqp: Amqp, spec: QueueSpec, rabbit_url: str) -> None:
    received: asyncio.Queue[events_pb2.JobProgress] = asyncio.Queue()

    async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        assert message.content_type == "application/x-protobuf"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        await received.put(decode(message, events_pb2.JobProgress))

    consumer = await amqp.consume(spec, handler)
    await amqp.publish(spec.routing_keys[0], _event("job-1"))
    event = await asyncio.wait_for(received.get(), 10)
    assert event.job_id == "job-1" and event.progress == 10
    await consumer.stop(grace=5)
    assert await _ready(rabbit_url, spec.name) == 0


class GiveUpLog:
    """An `on_give_up` hook that records its calls; it fails the first `failures` times."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[tuple[str, str]] = []
        self._failures = failures

    async def __call__(self, message: aio_pika.abc.AbstractIncomingMessage, reason: str) -> None:
        self.calls.append((message.message_id or "", reason))
        if len(self.calls) <= self._failures:
            raise Unavailable("the record store is down")


async def test_permanent_failure_is_given_up_at_once_and_recorded(amqp: Amqp, spec: QueueSpec, rabbit_url: str) -> None:
    attempts = 0
    gave_up = GiveUpLog()

    async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal attempts
        attempts += 1
        decode(message, events_pb2.DocumentUploaded)  # wrong type → PermanentFailure

    try:
        await amqp.consume(replace(spec, on_give_up=gave_up), handler)
        await amqp.publish(spec.routing_keys[0], _event("poison"), message_id="poison-1")
        dead = await _dlq_messages(rabbit_url, spec, 1)
        assert len(dead) == 1 and attempts == 1
        assert decode(dead[0], events_pb2.JobProgress).job_id == "poison"
        assert gave_up.calls == [("poison-1", "expected a genai.events.v1.DocumentUploaded body, "
                                              "got type 'genai.events.v1.JobProgress'")]
    finally:
        await amqp.stop_consumers(5)


async def test_invalid_input_is_permanent_too(amqp: Amqp, spec: QueueSpec, rabbit_url: str) -> None:
    calls = 0

    async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal calls
        calls += 1
        raise InvalidInput("prompt must not be empty")

    try:
        await amqp.consume(spec, handler)
        await amqp.publish(spec.routing_keys[0], _event("invalid"))
        assert len(await _dlq_messages(rabbit_url, spec, 1)) == 1 and calls == 1
    finally:
        await amqp.stop_consumers(5)


async def test_a_failing_message_is_retried_with_back_off_then_given_up_with_the_reason(
        amqp: Amqp, spec: QueueSpec, rabbit_url: str) -> None:
    seen: list[tuple[int, float]] = []
    gave_up = GiveUpLog()

    async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        seen.append((attempt(message), time.monotonic()))
        raise Unavailable("retriever: connection refused")

    try:
        await amqp.consume(replace(spec, on_give_up=gave_up), handler)
        await amqp.publish(spec.routing_keys[0], _event("flaky"), message_id="flaky-1")
        [dead] = await _dlq_messages(rabbit_url, spec, 1)
        assert [n for n, _ in seen] == [1, 2, 3]  # our own attempt header, not the broker's count
        waits = [later - earlier for (_, earlier), (_, later) in zip(seen, seen[1:], strict=False)]
        assert waits[0] >= 0.2 * 0.8 and waits[1] >= 0.4 * 0.8, waits  # back-off, with jitter
        [(message_id, reason)] = gave_up.calls
        assert message_id == "flaky-1" and reason.startswith("gave up after 3 attempts")
        assert reason.endswith("retriever: connection refused")
        assert dead.headers[LAST_ERROR_HEADER] == "retriever: connection refused"
    finally:
        await amqp.stop_consumers(5)


async def test_the_time_budget_ends_retries_before_the_attempts_do(
        amqp: Amqp, spec: QueueSpec, rabbit_url: str) -> None:
    seen: list[tuple[int, float]] = []
    gave_up = GiveUpLog()
    budget = RetryPolicy(attempts=100, budget_seconds=1.0, first_delay_seconds=0.2, max_delay_seconds=0.2)

    async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        seen.append((attempt(message), time.time()))
        raise Unavailable("still down")

    try:
        await amqp.consume(replace(spec, retry=budget, on_give_up=gave_up), handler)
        await amqp.publish(spec.routing_keys[0], _event("slow"))
        [dead] = await _dlq_messages(rabbit_url, spec, 1)
        # About one attempt per 0.2 s for 1 s: the budget, not the 100 attempts, ended it.
        attempts = [number for number, _ in seen]
        assert 2 <= len(seen) <= 10 and attempts == list(range(1, len(seen) + 1))
        [(_, reason)] = gave_up.calls
        assert reason.startswith(f"gave up after {len(seen)} attempts")
        # The first failure is recorded to the millisecond (a float header would be a minute off).
        assert dead.headers[FIRST_FAILURE_HEADER] / 1000 == pytest.approx(seen[0][1], abs=0.1)
    finally:
        await amqp.stop_consumers(5)


async def test_a_scheduled_retry_survives_a_restart_of_its_consumer(spec: QueueSpec, rabbit_url: str) -> None:
    slow = replace(spec, retry=SLOW_RETRIES)
    failed_once = asyncio.Event()
    delivered: asyncio.Queue[int] = asyncio.Queue()

    async def failing(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        failed_once.set()
        raise Unavailable("down")

    async def working(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await delivered.put(attempt(message))

    async with Amqp(rabbit_url, name="first-worker") as first:
        await first.consume(slow, failing)
        await first.publish(spec.routing_keys[0], _event("survivor"))
        await asyncio.wait_for(failed_once.wait(), 10)
        await first.stop_consumers(5)
    async with Amqp(rabbit_url, name="second-worker") as second:  # the first worker is gone
        await second.consume(slow, working)
        assert await asyncio.wait_for(delivered.get(), 15) == 2
        await second.stop_consumers(5)


async def test_a_give_up_whose_hook_failed_is_retried_without_running_the_handler_again(
        amqp: Amqp, spec: QueueSpec, rabbit_url: str) -> None:
    calls = 0
    gave_up = GiveUpLog(failures=1)

    async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal calls
        calls += 1
        raise PermanentFailure("undecodable")

    try:
        await amqp.consume(replace(spec, on_give_up=gave_up), handler)
        await amqp.publish(spec.routing_keys[0], _event("stubborn"))
        assert len(await _dlq_messages(rabbit_url, spec, 1)) == 1
        assert calls == 1 and len(gave_up.calls) == 2
    finally:
        await amqp.stop_consumers(5)


async def test_a_queue_at_its_length_limit_refuses_publishes(amqp: Amqp, spec: QueueSpec, rabbit_url: str) -> None:
    await amqp.declare_queue(replace(spec, max_length=2))
    accepted = 0
    with pytest.raises(Unavailable):
        for job in range(10):
            await amqp.publish(spec.routing_keys[0], _event(f"job-{job}"))
            accepted += 1
    # A quorum queue checks its length before it enqueues, so it takes one past the limit.
    assert accepted in (2, 3)
    assert await _ready(rabbit_url, spec.name) == accepted  # every accepted publish is there


async def test_a_queue_declared_earlier_with_other_arguments_is_used_as_it_is(amqp: Amqp, spec: QueueSpec) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()

    async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await received.put(decode(message, events_pb2.JobProgress).job_id)

    try:
        await amqp.declare_queue(replace(spec, max_length=1000))  # an older release's arguments
        await amqp.consume(spec, handler)
        await amqp.publish(spec.routing_keys[0], _event("still-works"))
        assert await asyncio.wait_for(received.get(), 10) == "still-works"
    finally:
        await amqp.stop_consumers(5)


async def test_unroutable_publish_is_refused_not_lost(amqp: Amqp) -> None:
    with pytest.raises(Unavailable):
        await amqp.publish(f"nobody.listens.{uuid.uuid4().hex}", _event("lost?"))


async def test_undecodable_body_is_a_permanent_failure() -> None:
    message = aio_pika.Message(body=b"\xff\xff\xff not protobuf", type="genai.events.v1.JobProgress")

    class Incoming:
        body, type, headers = message.body, message.type, {}

    with pytest.raises(PermanentFailure):
        decode(Incoming(), events_pb2.JobProgress)  # type: ignore[arg-type]


async def test_consumer_is_restored_after_the_connection_drops(spec: QueueSpec, rabbit_url: str) -> None:
    name = f"test-reconnect-{uuid.uuid4().hex[:8]}"
    received: asyncio.Queue[str] = asyncio.Queue()

    async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await received.put(decode(message, events_pb2.JobProgress).job_id)

    async with Amqp(rabbit_url, name=name) as amqp:
        try:
            await amqp.consume(spec, handler)
            await amqp.publish(spec.routing_keys[0], _event("before"))
            assert await asyncio.wait_for(received.get(), 10) == "before"
            _close_connection_named(name)

            async def publish_after() -> bool:
                try:
                    await amqp.publish(spec.routing_keys[0], _event("after"))
                except Unavailable:  # still reconnecting
                    return False
                return True

            await eventually(publish_after, within=30, every=0.2, what="a publish after the reconnect")
            assert await asyncio.wait_for(received.get(), 20) == "after"
        finally:
            await amqp.stop_consumers(5)


def _close_connection_named(name: str) -> None:
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        check=True, capture_output=True, text=True,
    ).stdout
    pids = [line.split("\t", 1)[0] for line in listing.splitlines() if name in line]
    assert pids, f"connection {name} not found"
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "test: simulated broker drop"], check=True)


async def test_broadcast_reaches_every_replica_and_its_queue_goes_with_the_connection(rabbit_url: str) -> None:
    key = f"test.broadcast.{uuid.uuid4().hex[:8]}"
    inboxes: list[asyncio.Queue[str]] = [asyncio.Queue(), asyncio.Queue()]

    def handler_for(inbox: asyncio.Queue[str]):  # type: ignore[no-untyped-def]
        async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await inbox.put(decode(message, events_pb2.JobProgress).job_id)
        return handler

    names = [f"test.replica.{uuid.uuid4().hex[:8]}" for _ in inboxes]
    async with Amqp(rabbit_url, name="replica-a") as first, Amqp(rabbit_url, name="replica-b") as second:
        for amqp, name, inbox in zip((first, second), names, inboxes, strict=True):
            await amqp.consume_broadcast(name, (key,), handler_for(inbox))
        await first.publish(key, _event("cancel-me"))
        for inbox in inboxes:
            assert await asyncio.wait_for(inbox.get(), 10) == "cancel-me"
        await first.stop_consumers(5)
        await second.stop_consumers(5)
    connection = await aio_pika.connect(rabbit_url)
    async with connection:
        channel = await connection.channel()
        for name in names:
            with pytest.raises(aio_pika.exceptions.ChannelClosed):
                await channel.declare_queue(name, passive=True)
            channel = await connection.channel()
