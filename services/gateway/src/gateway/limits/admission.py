"""Whether a /v1 request may start now: per-key limits and process-wide caps, checked in order
from the cheapest, before the request's body is read (gateway.intake).

| limit | scope | refusal |
| --- | --- | --- |
| requests in flight (all but event streams) | this process | 503 + Retry-After |
| event streams open | this process | 503 + Retry-After |
| event streams open per key | this process | 429 + Retry-After |
| requests per minute per key | Redis (all replicas) or this process | 429 + Retry-After (when a token is back) |
| chats in flight per key | Redis (all replicas) or this process | 429 + Retry-After |

The process-wide caps shed load fast instead of slowing every request; the per-key ones keep one
key from taking what others need. When Redis fails, the per-key counts fall back to this process
(logged) rather than refusing everything.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from redis.exceptions import RedisError

from gateway.limits.leases import LeaseCounter, LocalLeases
from gateway.limits.rate import LocalRate, RateCounter
from genai_common.errors import RateLimited, Unavailable

log = logging.getLogger(__name__)

# What a refusal tells a client to wait when nothing more exact is known (a slot frees when some
# request ends): short, so a client that honours it is not kept away long.
SHED_RETRY_SECONDS = 0.5
BUSY_RETRY_SECONDS = 1.0


class Kind(enum.Enum):
    API = "api"
    CHAT = "chat"
    STREAM = "stream"
    UPLOAD = "upload"


@dataclass(frozen=True)
class AdmissionLimits:
    """0 turns a limit off."""

    key_requests_per_minute: int = 0
    key_max_chats: int = 0
    key_max_streams: int = 0
    max_streams: int = 0
    max_in_flight: int = 0


class Admission:
    def __init__(self, limits: AdmissionLimits, rate: RateCounter | None = None,
                 chats: LeaseCounter | None = None) -> None:
        self._limits = limits
        per_minute = limits.key_requests_per_minute
        self._local_rate = LocalRate(per_minute) if per_minute else None
        self._rate = rate or self._local_rate
        self._local_chats = LocalLeases()
        self._chats: LeaseCounter = chats or self._local_chats
        self._streams = LocalLeases()
        self._in_flight = 0
        self._streams_open = 0
        # The kinds a per-key lease is taken for (a limit of 0 is off).
        self._leased = frozenset(kind for kind, limit in ((Kind.CHAT, limits.key_max_chats),
                                                          (Kind.STREAM, limits.key_max_streams)) if limit)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def streams_open(self) -> int:
        return self._streams_open

    def admit(self, key: str, kind: Kind) -> Admitted:
        """`async with admission.admit(key, kind):` holds the request's places while it runs."""
        return Admitted(self, key, kind)

    async def enter(self, key: str, kind: Kind) -> Held:
        """Take the request's places; raise RateLimited / Unavailable if it may not start. Give them
        back with `leave`. Plain calls, not context managers: this runs for every /v1 request, and
        with the per-key limits off nothing here awaits anything."""
        stream = kind is Kind.STREAM
        self._shed_if_full(stream)
        if stream:
            self._streams_open += 1
        else:
            self._in_flight += 1
        try:
            if self._rate is not None:
                await self._check_rate(key)
            if kind in self._leased:
                return await self._lease(key, kind, stream)
        except BaseException:
            self._uncount(stream)
            raise
        return _STREAM if stream else _REQUEST

    async def leave(self, held: Held) -> None:
        """Give back what `enter` took (once, however the request ended)."""
        try:
            if held.lease is not None:
                assert held.counter is not None
                try:
                    await held.counter.release(held.key, held.lease)
                except RedisError:
                    log.warning("Redis is unavailable: a lease will expire instead of being given back")
        finally:
            self._uncount(held.stream)

    def _uncount(self, stream: bool) -> None:
        if stream:
            self._streams_open -= 1
        else:
            self._in_flight -= 1

    def _shed_if_full(self, stream: bool) -> None:
        limits = self._limits
        if stream and limits.max_streams and self._streams_open >= limits.max_streams:
            raise Unavailable("too many event streams are open on this server; retry shortly",
                              retry_after=SHED_RETRY_SECONDS, code="overloaded")
        if not stream and limits.max_in_flight and self._in_flight >= limits.max_in_flight:
            raise Unavailable("the server is at capacity; retry shortly", retry_after=SHED_RETRY_SECONDS,
                              code="overloaded")

    async def _check_rate(self, key: str) -> None:
        if self._rate is None:
            return
        try:
            wait = await self._rate.take(key)
        except RedisError:
            log.warning("Redis is unavailable: counting this key's requests in this process only")
            assert self._local_rate is not None
            wait = await self._local_rate.take(key)
        if wait > 0:
            raise RateLimited(f"rate limit reached: {self._limits.key_requests_per_minute} requests per minute "
                              f"for this key", retry_after=wait, code="rate_limit_exceeded")

    async def _lease(self, key: str, kind: Kind, stream: bool) -> Held:
        counter: LeaseCounter
        if stream:
            counter, limit, what = self._streams, self._limits.key_max_streams, "event streams open"
        else:
            counter, limit, what = self._chats, self._limits.key_max_chats, "chats in flight"
        try:
            lease = await counter.acquire(key, limit)
        except RedisError:
            log.warning("Redis is unavailable: counting this key's %s in this process only", what)
            counter = self._local_chats
            lease = await counter.acquire(key, limit)
        if lease is None:
            raise RateLimited(f"too many {what} for this key (the limit is {limit}); retry when one ends",
                              retry_after=BUSY_RETRY_SECONDS, code="concurrency_limit_exceeded")
        return Held(stream, key, counter, lease)


@dataclass(frozen=True, slots=True)
class Held:
    """What an admitted request holds: its place in a process-wide count, and a per-key lease."""

    stream: bool
    key: str = ""
    counter: LeaseCounter | None = None
    lease: str | None = None


# Most requests hold no lease: one shared Held each for them, nothing allocated per request.
_REQUEST, _STREAM = Held(False), Held(True)


class Admitted:
    """`Admission.admit` as an async context manager."""

    __slots__ = ("_admission", "_held", "_key", "_kind")

    def __init__(self, admission: Admission, key: str, kind: Kind) -> None:
        self._admission, self._key, self._kind = admission, key, kind

    async def __aenter__(self) -> None:
        self._held = await self._admission.enter(self._key, self._kind)

    async def __aexit__(self, *exc_info: object) -> None:
        await self._admission.leave(self._held)
