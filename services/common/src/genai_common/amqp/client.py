"""The process's one AMQP connection (aio-pika, robust): confirmed publishes, declared topology,
consumers that ack only after the handler's effect is committed."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence

import aio_pika
from aio_pika.abc import AbstractQueue, AbstractRobustChannel, AbstractRobustConnection, AbstractRobustExchange
from google.protobuf.message import Message

from genai_common.amqp.broker_version import BrokerTooOld, check_broker
from genai_common.amqp.codec import PermanentFailure
from genai_common.amqp.consumer import Consumer, Handler, describe
from genai_common.amqp.topology import DEAD_LETTER_EXCHANGE, EXCHANGE, PROTOBUF_CONTENT_TYPE, QueueSpec
from genai_common.errors import InvalidInput, Unavailable

log = logging.getLogger(__name__)

_PUBLISH_ERRORS = (aio_pika.exceptions.AMQPError, aio_pika.exceptions.DeliveryError,
                   aio_pika.exceptions.PublishError, ConnectionError, TimeoutError, RuntimeError)
# How soon a client may try again after the broker refused its message (Retry-After).
FULL_RETRY_AFTER_SECONDS = 5.0
BLOCKED_RETRY_AFTER_SECONDS = 5.0
DOWN_RETRY_AFTER_SECONDS = 1.0


def refused(what: str, exc: BaseException, timeout: float) -> Unavailable:
    """Why the broker did not take a message, as the Unavailable a client is answered with."""
    if isinstance(exc, TimeoutError):  # blocked by a memory or disk alarm, or far too slow
        return Unavailable(f"the message broker did not confirm {what} within {timeout:g} s",
                           retry_after=BLOCKED_RETRY_AFTER_SECONDS, code="broker_busy")
    if type(exc) is aio_pika.exceptions.DeliveryError:  # nacked: a queue at its length limit
        return Unavailable(f"the queue for {what} is full", retry_after=FULL_RETRY_AFTER_SECONDS,
                           code="queue_full")
    return Unavailable(f"message broker did not accept {what}: {type(exc).__name__}",
                       retry_after=DOWN_RETRY_AFTER_SECONDS, code="broker_unavailable")


class Amqp:
    """A confirmed publisher channel plus one channel per consumer."""

    def __init__(self, url: str, *, name: str = "genai", publish_timeout: float = 5.0) -> None:
        self._url = url
        self._name = name
        self._publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._exchange: AbstractRobustExchange | None = None
        self._consumers: list[Consumer] = []
        self.broker_version = ""  # as the broker reported it at the last connect

    async def __aenter__(self) -> Amqp:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, deadline: float = 15.0) -> None:
        """Connect (robust: it comes back by itself after a drop); raises BrokerTooOld, with the
        connection closed, when the broker is older than our queue arguments need."""
        connection = await aio_pika.connect_robust(
            self._url, timeout=deadline, client_properties={"connection_name": self._name}
        )
        try:
            self.broker_version = check_broker(self._server_properties(connection), connection_name=self._name)
        except BrokerTooOld:
            await connection.close()
            raise
        connection.reconnect_callbacks.add(self._on_reconnect)
        self._connection = connection
        self._publish_channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await self._declare_exchanges(self._publish_channel)

    @staticmethod
    def _server_properties(connection: AbstractRobustConnection) -> Mapping[str, object]:
        transport = connection.transport
        return dict(transport.connection.server_properties or {}) if transport is not None else {}

    def _on_reconnect(self, connection: AbstractRobustConnection | None, /) -> None:
        """The broker after a reconnect may be another one (a rolling upgrade): log it again, and
        loudly if it is too old (the connection is already serving, so it is not refused)."""
        if connection is None:
            return
        try:
            self.broker_version = check_broker(self._server_properties(connection), connection_name=self._name)
        except BrokerTooOld as exc:
            log.error("after a reconnect: %s", exc, extra={"connection": self._name})

    @property
    def is_connected(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

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
        """Publish persistent with a broker confirm; raises Unavailable if not confirmed, unroutable
        or refused (a queue at its length limit).

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
        except _PUBLISH_ERRORS as exc:
            raise refused(routing_key, exc, self._publish_timeout) from exc

    async def publish_to_queue(self, queue: str, message: aio_pika.Message) -> None:
        """Publish straight to one queue (the default exchange), confirmed; raises Unavailable."""
        assert self._publish_channel is not None, "connect() first"
        try:
            await self._publish_channel.default_exchange.publish(
                message, queue, mandatory=True, timeout=self._publish_timeout)
        except _PUBLISH_ERRORS as exc:
            raise refused(f"a message for {queue}", exc, self._publish_timeout) from exc

    async def declare_queue(self, spec: QueueSpec, channel: AbstractRobustChannel | None = None) -> AbstractQueue:
        """Declare a quorum work queue, its retry queues, bindings and dead-letter queue (idempotent)."""
        assert self._connection is not None, "connect() first"
        channel = channel or self._publish_channel
        assert channel is not None
        dlq = await channel.declare_queue(spec.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"})
        await dlq.bind(DEAD_LETTER_EXCHANGE, routing_key=spec.name)
        for tier in spec.retry.tiers():
            await channel.declare_queue(spec.retry_queue(tier), durable=True, arguments=spec.retry_queue_arguments())
        queue = await self._declare_work_queue(spec, channel)
        for key in spec.routing_keys:
            await queue.bind(EXCHANGE, routing_key=key)
        return queue

    async def _declare_work_queue(self, spec: QueueSpec, channel: AbstractRobustChannel) -> AbstractQueue:
        """A queue declared earlier with other arguments (an older release, another max length)
        cannot be redeclared: run with the existing one and say how to apply the new arguments."""
        assert self._connection is not None
        probe = await self._connection.channel()
        try:
            await probe.declare_queue(spec.name, durable=True, arguments=spec.queue_arguments())
        except aio_pika.exceptions.ChannelPreconditionFailed as exc:
            log.warning("queue %s exists with other arguments (%s); using it as it is. To apply %s, "
                        "delete the queue once it is empty, or set a broker policy", spec.name, exc,
                        spec.queue_arguments())
            return await channel.declare_queue(spec.name, passive=True)
        finally:
            if not probe.is_closed:
                await probe.close()
        return await channel.declare_queue(spec.name, durable=True, arguments=spec.queue_arguments())

    async def replay(self, queue: str, handler: Handler, *, limit: int) -> int:
        """Hand up to `limit` messages waiting in `queue` (a dead-letter queue) to `handler`, one
        at a time (basic.get); each one handled is acked. The first that fails transiently is put
        back and ends the replay (the next one tries again); one that can never succeed
        (PermanentFailure, InvalidInput) is logged and dropped. Returns how many were handled."""
        assert self._connection is not None, "connect() first"
        handled = 0
        channel = await self._connection.channel()
        try:
            source = await channel.get_queue(queue, ensure=False)
            while handled < limit and (message := await source.get(fail=False, timeout=self._publish_timeout)):
                try:
                    await handler(message)
                except (PermanentFailure, InvalidInput) as exc:
                    log.error("dropping a dead-lettered message that can never apply: %s", describe(exc),
                              extra={"queue": queue})
                    await message.reject(requeue=False)
                    continue
                except Exception as exc:
                    log.warning("replay of %s stopped: %s", queue, describe(exc))
                    await message.nack(requeue=True)
                    break
                await message.ack()
                handled += 1
        finally:
            if not channel.is_closed:
                async with asyncio.timeout(self._publish_timeout):
                    await channel.close()
        return handled

    async def consume(self, spec: QueueSpec, handler: Handler) -> Consumer:
        """Declare `spec` on a channel of its own with `prefetch`, and start consuming.

        The robust channel re-declares the queue and restores the consumer after a reconnect.
        """
        channel = await self._consumer_channel(spec.prefetch)
        queue = await self.declare_queue(spec, channel)
        return await self._start_consumer(Consumer(queue, handler, spec, retries=self))

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
        return await self._start_consumer(Consumer(queue, handler))

    async def _consumer_channel(self, prefetch: int) -> AbstractRobustChannel:
        assert self._connection is not None, "connect() first"
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        await self._declare_exchanges(channel)
        return channel

    async def _start_consumer(self, consumer: Consumer) -> Consumer:
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    async def stop_consumers(self, grace: float) -> None:
        await asyncio.gather(*(c.stop(grace) for c in self._consumers))
        self._consumers.clear()
