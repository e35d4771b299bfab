"""RabbitMQ plumbing (aio-pika): one robust connection, declared topology, confirmed publishes,
consumers that ack only after the handler's effect is committed.

Topology: one durable topic exchange `genai.events`. Each consuming service owns (declares) its
queues: quorum queues with a delivery limit, dead-lettered through `genai.events.dlx` into
`<queue>.dlq`. Bodies are protobuf messages; `content_type` and `type` (the message's full name)
say how to read them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import aio_pika
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustExchange,
)
from google.protobuf.message import DecodeError, Message

from genai_common.errors import Unavailable

log = logging.getLogger(__name__)

EXCHANGE = "genai.events"
DEAD_LETTER_EXCHANGE = "genai.events.dlx"
PROTOBUF_CONTENT_TYPE = "application/x-protobuf"

# Routing keys on `genai.events` (the body of each is a message of proto/genai/events/v1).
DOCUMENT_UPLOADED = "document.uploaded"  # DocumentUploaded: gateway -> ingest
IMAGE_JOB_REQUESTED = "image.job.requested"  # ImageJobRequested: gateway -> imagegen
TEXT_JOB_REQUESTED = "text.job.requested"  # TextJobRequested: gateway -> batch text consumer
JOB_CANCEL_REQUESTED = "job.cancel.requested"  # JobCancelRequested: gateway -> every imagegen replica
JOB_PROGRESS = "job.progress"  # JobProgress: workers -> gateway

M = TypeVar("M", bound=Message)


class PermanentFailure(Exception):
    """The message can never succeed (undecodable, invalid): dead-letter it now, no retry."""


@dataclass(frozen=True)
class QueueSpec:
    name: str
    routing_keys: Sequence[str]
    delivery_limit: int = 5
    prefetch: int = 1


def delivery_count(message: AbstractIncomingMessage) -> int:
    """How many times this message was delivered before (quorum queues count them)."""
    value = (message.headers or {}).get("x-delivery-count", 0)
    return int(value) if isinstance(value, int) else 0


def decode(message: AbstractIncomingMessage, cls: type[M]) -> M:
    """Parse a protobuf body, refusing a wrong type or bytes that do not parse."""
    expected = cls.DESCRIPTOR.full_name
    if message.type and message.type != expected:
        raise PermanentFailure(f"expected a {expected} body, got type {message.type!r}")
    event = cls()
    try:
        event.ParseFromString(message.body)
    except DecodeError as exc:
        raise PermanentFailure(f"undecodable {expected} body: {exc}") from exc
    return event


Handler = Callable[[AbstractIncomingMessage], Awaitable[None]]


class Consumer:
    """Runs `handler` per delivery: return → ack; PermanentFailure → dead-letter; other error → requeue."""

    def __init__(self, queue: AbstractQueue, handler: Handler) -> None:
        self._queue = queue
        self._handler = handler
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def start(self) -> None:
        self._tag = await self._queue.consume(self._on_message)

    async def stop(self, grace: float) -> None:
        """Stop intake, give in-flight deliveries `grace` seconds, then requeue what is left."""
        if self._tag is not None:
            try:
                # Bounded: with the broker gone, a cancel on a dead channel would wait forever.
                async with asyncio.timeout(grace):
                    await self._queue.cancel(self._tag)
            except Exception:  # the channel may already be gone; its deliveries return to the queue
                log.warning("could not cancel consumer %s cleanly", self._queue.name)
            self._tag = None
        if self._in_flight:
            _done, pending = await asyncio.wait(set(self._in_flight), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            await self._process(message)
        finally:
            self._in_flight.discard(task)

    async def _process(self, message: AbstractIncomingMessage) -> None:
        try:
            await self._handler(message)
        except PermanentFailure as exc:
            log.error("dead-lettering message: %s", exc, extra={"queue": self._queue.name, "type": message.type})
            await message.reject(requeue=False)
        except asyncio.CancelledError:
            await asyncio.shield(message.nack(requeue=True))
            raise
        except Exception:
            log.exception("handler failed; message requeued", extra={"queue": self._queue.name})
            await message.nack(requeue=True)
        else:
            await message.ack()


class Amqp:
    """The process's one AMQP connection: a confirmed publisher channel plus consumer channels."""

    def __init__(self, url: str, *, name: str = "genai", publish_timeout: float = 10.0) -> None:
        self._url = url
        self._name = name
        self._publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._exchange: AbstractRobustExchange | None = None
        self._consumers: list[Consumer] = []

    async def __aenter__(self) -> Amqp:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, timeout: float = 15.0) -> None:
        self._connection = await aio_pika.connect_robust(
            self._url, timeout=timeout, client_properties={"connection_name": self._name}
        )
        self._publish_channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await self._declare_exchanges(self._publish_channel)

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed and bool(self._connection.connected.is_set())

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    @staticmethod
    async def _declare_exchanges(channel: AbstractRobustChannel) -> AbstractRobustExchange:
        await channel.declare_exchange(DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
        return await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)

    async def publish(self, routing_key: str, event: Message, *, message_id: str | None = None,
                      headers: Mapping[str, str] | None = None) -> None:
        """Publish persistent with a broker confirm; raises Unavailable if not confirmed or unroutable.

        `headers` (small string values, e.g. `document_id`) let a consumer trace a message whose
        body it cannot decode.
        """
        assert self._exchange is not None, "connect() first"
        message = aio_pika.Message(
            body=event.SerializeToString(),
            content_type=PROTOBUF_CONTENT_TYPE,
            type=event.DESCRIPTOR.full_name,
            message_id=message_id or uuid.uuid4().hex,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=dict(headers) if headers else None,
        )
        try:
            await self._exchange.publish(message, routing_key, mandatory=True, timeout=self._publish_timeout)
        except (aio_pika.exceptions.AMQPError, aio_pika.exceptions.DeliveryError, aio_pika.exceptions.PublishError,
                ConnectionError, TimeoutError, RuntimeError) as exc:
            raise Unavailable(f"message broker did not accept {routing_key}: {type(exc).__name__}") from exc

    async def declare_queue(self, spec: QueueSpec, channel: AbstractRobustChannel | None = None) -> AbstractQueue:
        """Declare a quorum work queue, its bindings and its dead-letter queue (idempotent)."""
        assert self._connection is not None, "connect() first"
        channel = channel or self._publish_channel
        assert channel is not None
        dlq_name = f"{spec.name}.dlq"
        dlq = await channel.declare_queue(dlq_name, durable=True, arguments={"x-queue-type": "quorum"})
        await dlq.bind(DEAD_LETTER_EXCHANGE, routing_key=spec.name)
        queue = await channel.declare_queue(
            spec.name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": spec.delivery_limit,
                "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                "x-dead-letter-routing-key": spec.name,
            },
        )
        for key in spec.routing_keys:
            await queue.bind(EXCHANGE, routing_key=key)
        return queue

    async def consume(self, spec: QueueSpec, handler: Handler) -> Consumer:
        """Declare `spec` on a channel of its own with `prefetch`, and start consuming.

        The robust channel re-declares the queue and restores the consumer after a reconnect.
        """
        channel = await self._consumer_channel(spec.prefetch)
        return await self._start_consumer(await self.declare_queue(spec, channel), handler)

    async def consume_broadcast(self, name: str, routing_keys: Sequence[str], handler: Handler,
                                *, prefetch: int = 16) -> Consumer:
        """Consume every message with `routing_keys` on a queue of this process's own (a fan-out).

        The queue is exclusive and auto-delete: it lives as long as this connection, so each
        replica gets its own copy of each message (e.g. `job.cancel.requested`). `name` must be
        unique per process (add a random suffix); the robust channel re-declares it after a reconnect.
        """
        channel = await self._consumer_channel(prefetch)
        queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
        for key in routing_keys:
            await queue.bind(EXCHANGE, routing_key=key)
        return await self._start_consumer(queue, handler)

    async def _consumer_channel(self, prefetch: int) -> AbstractRobustChannel:
        assert self._connection is not None, "connect() first"
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        await self._declare_exchanges(channel)
        return channel

    async def _start_consumer(self, queue: AbstractQueue, handler: Handler) -> Consumer:
        consumer = Consumer(queue, handler)
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    async def stop_consumers(self, grace: float) -> None:
        await asyncio.gather(*(c.stop(grace) for c in self._consumers))
        self._consumers.clear()
