"""Protobuf bodies in and out, and what a delivery says about its retries (our own headers)."""

from __future__ import annotations

from typing import TypeVar

from aio_pika.abc import AbstractIncomingMessage
from google.protobuf.message import DecodeError, Message

M = TypeVar("M", bound=Message)

# Our retry bookkeeping travels in headers we set, never in broker-version-dependent ones
# (`x-delivery-count` changed meaning across RabbitMQ releases).
ATTEMPT_HEADER = "x-genai-attempt"  # 1-based number of this delivery's attempt
# Unix time of the first failed attempt, in integer milliseconds: AMQP tables carry a Python float
# as a 32-bit float, which rounds today's timestamps by up to a minute.
FIRST_FAILURE_HEADER = "x-genai-first-failure-ms"
LAST_ERROR_HEADER = "x-genai-last-error"  # why the last attempt failed (for the DLQ's reader)


class PermanentFailure(Exception):
    """The message can never succeed (undecodable, invalid): dead-letter it now, no retry."""


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


def attempt(message: AbstractIncomingMessage) -> int:
    """Which attempt this delivery is: 1 for the first, 2 for the first retry..."""
    value = (message.headers or {}).get(ATTEMPT_HEADER, 1)
    return value if isinstance(value, int) and value >= 1 else 1


def first_failure(message: AbstractIncomingMessage) -> float | None:
    """Unix seconds of the first failed attempt, or None before any failure."""
    value = (message.headers or {}).get(FIRST_FAILURE_HEADER)
    return value / 1000 if isinstance(value, int) else None


def first_failure_header(started: float) -> int:
    return int(started * 1000)


def header_text(message: AbstractIncomingMessage, name: str, limit: int = 64) -> str:
    """A short string header (`document_id`, `job_id`) of a message whose body may not decode."""
    value = (message.headers or {}).get(name) or ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value)[:limit]


def job_id_of(message: AbstractIncomingMessage, cls: type[Message]) -> str:
    """The job a message is about: its `job_id` header, else its body's `job_id` field; "" when
    neither can be read (for a give-up hook, which runs for undecodable messages too)."""
    job_id = header_text(message, "job_id")
    if job_id:
        return job_id
    try:
        return str(getattr(decode(message, cls), "job_id", ""))
    except PermanentFailure:
        return ""
