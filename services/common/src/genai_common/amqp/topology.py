"""What lives on the broker: the exchanges, the routing keys, and how a work queue is declared.

One durable topic exchange `genai.events` carries every event (the body of each routing key is
a message of `proto/genai/events/v1`). Each consuming service owns (declares) its queues: a
quorum work queue, its retry queues (one per back-off tier) and its dead-letter queue.

```
publish ─► genai.events ─(routing key)─► <queue> ─► consumer
                                            ▲          │ failed, attempts left: a copy with the
              (TTL expires, dead-lettered   │          │ next attempt number, acked original
               straight back to <queue>)    │          ▼
                                            └── <queue>.retry.<tier> (per-message TTL)
                                               consumer gives up ─► genai.events.dlx ─► <queue>.dlq
```
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

EXCHANGE = "genai.events"
DEAD_LETTER_EXCHANGE = "genai.events.dlx"
PROTOBUF_CONTENT_TYPE = "application/x-protobuf"

# Routing keys on `genai.events` (the body of each is a message of proto/genai/events/v1).
DOCUMENT_UPLOADED = "document.uploaded"  # DocumentUploaded: gateway -> ingest
IMAGE_JOB_REQUESTED = "image.job.requested"  # ImageJobRequested: gateway -> imagegen
TEXT_JOB_REQUESTED = "text.job.requested"  # TextJobRequested: gateway -> batch text consumer
JOB_CANCEL_REQUESTED = "job.cancel.requested"  # JobCancelRequested: gateway -> every imagegen replica
JOB_PROGRESS = "job.progress"  # JobProgress: workers -> gateway

# Deliveries the broker allows one message before it dead-letters it by itself. Our own retry
# policy gives up long before: this only stops a message that kills its consumer (a crash loop:
# such a message is redelivered, not retried). Fixed for every queue, because a quorum queue's
# arguments cannot change once it is declared.
DELIVERY_LIMIT = 10

GiveUp = Callable[[AbstractIncomingMessage, str], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed message is retried.

    Attempt n+1 waits `first_delay_seconds * 2**(n-1)` (at most `max_delay_seconds`) with ±20 %
    jitter. The consumer gives up after `attempts` deliveries in all (the first included), or
    when `budget_seconds` have passed since the first failure, whichever comes first. The waits
    live on the broker (retry queues with a TTL), so they survive a worker restart.
    """

    attempts: int = 10
    budget_seconds: float = 900.0
    first_delay_seconds: float = 1.0
    max_delay_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.first_delay_seconds <= 0 or self.max_delay_seconds < self.first_delay_seconds:
            raise ValueError(f"invalid retry policy {self!r}")

    def tiers(self) -> list[int]:
        """The back-off tiers in milliseconds: one retry queue each."""
        tiers: list[int] = []
        delay = self.first_delay_seconds
        while delay < self.max_delay_seconds:
            tiers.append(round(delay * 1000))
            delay *= 2
        tiers.append(round(self.max_delay_seconds * 1000))
        return tiers

    def tier_for(self, attempt: int) -> int:
        """The tier (ms) before attempt `attempt + 1`, after attempt `attempt` (1-based) failed."""
        tiers = self.tiers()
        return tiers[min(attempt - 1, len(tiers) - 1)]


@dataclass(frozen=True)
class QueueSpec:
    """A work queue: its bindings, prefetch, retry policy and give-up hook.

    `on_give_up(message, reason)` runs before a message is dead-lettered (retries spent, budget
    over, or a permanent failure): it records why, e.g. marks the document failed. It runs for
    messages that do not decode too, so it must find its record from headers or skip quietly.
    If it raises, giving up is retried later like a failed attempt.
    `max_length` bounds the ready messages: past it (a quorum queue takes one more), a publish is
    refused (`reject-publish`), which the publisher sees as Unavailable.
    """

    name: str
    routing_keys: Sequence[str]
    prefetch: int = 1
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    on_give_up: GiveUp | None = None
    max_length: int | None = None

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dlq"

    def retry_queue(self, tier_ms: int) -> str:
        return f"{self.name}.retry.{tier_ms}ms"

    def queue_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": self.name,
        }
        if self.max_length is not None:
            arguments["x-max-length"] = self.max_length
            arguments["x-overflow"] = "reject-publish"
        return arguments

    def retry_queue_arguments(self) -> dict[str, Any]:
        """A retry queue dead-letters expired messages straight back to the work queue (default
        exchange, the queue's name), at least once, so a retry is never lost on the way."""
        return {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
