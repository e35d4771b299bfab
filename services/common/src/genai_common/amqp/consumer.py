"""Runs a handler per delivery and decides the message's fate, the same way for every queue.

- the handler returns → ack (its effect is committed);
- `PermanentFailure` or `InvalidInput` → give up now: `on_give_up`, then dead-letter;
- any other error → if attempts and time budget remain, a copy goes to the retry queue of its
  back-off tier (with the next attempt number) and the original is acked once the copy is
  confirmed; otherwise give up;
- cancelled (shutdown) → nack with requeue: another replica takes it at once.

A handler is never interrupted by the broker: when a channel closes (the broker stopped, the
connection dropped), aio-pika cancels its delivery callbacks. The handler runs in a task of its
own that the callback only waits for (shielded), so a handler in the middle of a database
transaction finishes it, commits or rolls back, and returns its connection; its ack then fails
on the dead channel (logged) and the broker redelivers the message, which the idempotent
handler applies again. Only `stop()` (shutdown, after its grace) cancels a handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from genai_common.amqp.codec import (
    ATTEMPT_HEADER,
    FIRST_FAILURE_HEADER,
    LAST_ERROR_HEADER,
    PermanentFailure,
    attempt,
    first_failure,
    first_failure_header,
    header_text,
)
from genai_common.amqp.topology import QueueSpec
from genai_common.errors import InvalidInput, ServiceError

log = logging.getLogger(__name__)

Handler = Callable[[AbstractIncomingMessage], Awaitable[None]]
JITTER = 0.2
# What settling a delivery raises once its channel or connection is gone.
_CHANNEL_GONE = (aio_pika.exceptions.ChannelInvalidStateError, aio_pika.exceptions.AMQPConnectionError,
                 aio_pika.exceptions.ChannelClosed, ConnectionError)


class RetryPublisher(Protocol):
    async def publish_to_queue(self, queue: str, message: aio_pika.Message) -> None: ...


def describe(exc: BaseException) -> str:
    """A one-line reason for logs and records (a ServiceError's message is safe to show)."""
    if isinstance(exc, ServiceError):
        text = exc.message
    elif isinstance(exc, PermanentFailure):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:300]


def retry_copy(message: AbstractIncomingMessage, next_attempt: int, started: float, reason: str,
               expiration_seconds: float) -> aio_pika.Message:
    headers: dict[str, Any] = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-death")}
    headers.update({ATTEMPT_HEADER: next_attempt, FIRST_FAILURE_HEADER: first_failure_header(started),
                    LAST_ERROR_HEADER: reason[:300]})
    return aio_pika.Message(
        body=message.body, content_type=message.content_type, type=message.type,
        message_id=message.message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers=headers, expiration=max(0.001, expiration_seconds),
    )


class Consumer:
    def __init__(self, queue: AbstractQueue, handler: Handler, spec: QueueSpec | None = None,
                 retries: RetryPublisher | None = None) -> None:
        self._queue = queue
        self._handler = handler
        self._spec = spec
        self._retries = retries
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

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
        work = asyncio.create_task(self._settled(message), name=f"consume {self._queue.name}")
        self._in_flight.add(work)
        work.add_done_callback(self._in_flight.discard)
        # The channel's loss cancels this callback, never `work` (see the module's docstring).
        await asyncio.shield(work)

    async def _settled(self, message: AbstractIncomingMessage) -> None:
        """Process one delivery; a settlement (ack, nack, retry copy) the dead channel refuses is
        logged, not raised: the broker redelivers an unsettled message."""
        try:
            await self._process(message)
        except _CHANNEL_GONE as exc:
            log.warning("delivery not settled, the channel is gone (%s); the broker redelivers it",
                        type(exc).__name__, extra={"queue": self._queue.name})

    async def _process(self, message: AbstractIncomingMessage) -> None:
        extra = {"queue": self._queue.name, "type": message.type, "attempt": attempt(message)}
        if self._spec is not None and attempt(message) > self._spec.retry.attempts:
            # A give-up whose hook failed earlier: record it now, without running the handler again.
            await self._give_up(message, header_text(message, LAST_ERROR_HEADER, 300) or "retries spent")
            return
        try:
            await self._handler(message)
        except (PermanentFailure, InvalidInput) as exc:
            log.error("dead-lettering message: %s", describe(exc), extra=extra)
            await self._give_up(message, describe(exc))
        except asyncio.CancelledError:  # stop(): shutdown after the grace period
            with contextlib.suppress(*_CHANNEL_GONE):
                await asyncio.shield(message.nack(requeue=True))
            raise
        except Exception as exc:
            if isinstance(exc, ServiceError):
                log.warning("handler failed: %s", exc.message, extra=extra)
            else:
                log.exception("handler failed", extra=extra)
            await self._retry_or_give_up(message, describe(exc))
        else:
            await message.ack()

    async def _retry_or_give_up(self, message: AbstractIncomingMessage, reason: str) -> None:
        if self._spec is None or self._retries is None:  # a broadcast queue: requeue, as before
            await message.nack(requeue=True)
            return
        policy = self._spec.retry
        current = attempt(message)
        started = first_failure(message) or time.time()
        if current >= policy.attempts or time.time() - started >= policy.budget_seconds:
            spent = f"gave up after {current} attempts in {time.time() - started:.0f} s: {reason}"
            log.error("retries spent; dead-lettering", extra={"queue": self._queue.name, "reason": reason})
            await self._give_up(message, spent)
            return
        await self._schedule(message, current + 1, started, reason)

    async def _schedule(self, message: AbstractIncomingMessage, next_attempt: int, started: float,
                        reason: str) -> None:
        assert self._spec is not None and self._retries is not None
        tier = self._spec.retry.tier_for(next_attempt - 1)
        delay = tier / 1000 * random.uniform(1 - JITTER, 1 + JITTER)
        try:
            await self._retries.publish_to_queue(self._spec.retry_queue(tier),
                                                 retry_copy(message, next_attempt, started, reason, delay))
        except Exception:
            # The broker refused the copy: hand the original back (redelivered now; the broker's
            # delivery limit still bounds it).
            log.warning("could not schedule a retry; requeueing", extra={"queue": self._queue.name})
            await message.nack(requeue=True)
            return
        await message.ack()

    async def _give_up(self, message: AbstractIncomingMessage, reason: str) -> None:
        hook = self._spec.on_give_up if self._spec is not None else None
        if hook is not None:
            try:
                await hook(message, reason)
            except Exception as exc:
                log.warning("give-up hook failed (%s); will give up again later", describe(exc),
                            extra={"queue": self._queue.name})
                if self._spec is not None and self._retries is not None:
                    started = first_failure(message) or time.time()
                    await self._schedule(message, self._spec.retry.attempts + 1, started, reason)
                else:
                    await message.nack(requeue=True)
                return
        await message.reject(requeue=False)

