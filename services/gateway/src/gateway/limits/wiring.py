"""The process's `Admission`: counted in Redis when REDIS_URL is set, else in this process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from gateway.limits.admission import Admission, AdmissionLimits
from gateway.limits.leases import RedisLeases
from gateway.limits.rate import RedisRate
from gateway.settings import GatewaySettings

# Redis calls of the limits: a Redis that hangs must not hang every request.
REDIS_TIMEOUT_SECONDS = 0.5
# A chat lease a crashed replica never gave back expires after the longest a chat can take.
CHAT_LEASE_SLACK_SECONDS = 60.0


def admission_limits(settings: GatewaySettings) -> AdmissionLimits:
    return AdmissionLimits(key_requests_per_minute=settings.gateway_key_requests_per_minute,
                           key_max_chats=settings.gateway_key_max_chats,
                           key_max_streams=settings.gateway_key_max_streams,
                           max_streams=settings.gateway_max_streams, max_in_flight=settings.gateway_max_in_flight)


async def _nothing() -> None:
    return None


def open_admission(settings: GatewaySettings) -> tuple[Admission, Callable[[], Awaitable[None]]]:
    """The admission and what closes it (the Redis client connects on first use, not here)."""
    limits = admission_limits(settings)
    if not settings.redis_url:
        return Admission(limits), _nothing
    redis = Redis.from_url(settings.redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                           socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
    rate = RedisRate(redis, limits.key_requests_per_minute) if limits.key_requests_per_minute else None
    chats = RedisLeases(redis, "chats", settings.llm_timeout_seconds + CHAT_LEASE_SLACK_SECONDS)
    return Admission(limits, rate=rate, chats=chats), redis.aclose
