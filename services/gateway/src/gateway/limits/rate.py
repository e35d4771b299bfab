"""Requests per minute per key: a token bucket (GCRA) that refills `per_minute` tokens a minute
and holds at most `per_minute`, so a key may burst up to its minute's worth and then goes at the
refill rate. `take` answers 0 when the request may go, else the seconds until it could: the
honest `Retry-After`.

`LocalRate` counts in this process; `RedisRate` counts in Redis with one atomic script that
reads Redis's own clock, so every replica sharing the Redis shares each key's bucket.
"""

from __future__ import annotations

import time
from typing import Protocol

from redis.asyncio import Redis


class RateCounter(Protocol):
    async def take(self, key: str) -> float: ...


class LocalRate:
    """One process's buckets: key -> theoretical arrival time (monotonic seconds)."""

    def __init__(self, per_minute: int, max_keys: int = 100_000) -> None:
        self._interval = 60.0 / per_minute
        self._tolerance = self._interval * (per_minute - 1)
        self._tat: dict[str, float] = {}
        self._max_keys = max_keys

    async def take(self, key: str) -> float:
        return self.take_now(key, time.monotonic())

    def take_now(self, key: str, now: float) -> float:
        tat = max(self._tat.get(key, now), now)
        wait = tat - now - self._tolerance
        if wait > 0:
            return wait
        if len(self._tat) >= self._max_keys and key not in self._tat:
            self._forget_idle(now)
        self._tat[key] = tat + self._interval
        return 0.0

    def _forget_idle(self, now: float) -> None:
        """Drop buckets that have refilled completely (they would start from `now` anyway)."""
        for stale in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[stale]


# KEYS[1] the bucket; ARGV: interval and tolerance in microseconds. Returns microseconds to wait.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - now - tolerance
if wait > 0 then return wait end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
"""


class RedisRate:
    """The same buckets in Redis (key `genai:rate:<key>`), shared by every replica."""

    def __init__(self, redis: Redis, per_minute: int) -> None:
        self._script = redis.register_script(_GCRA)
        interval = 60_000_000 // per_minute
        self._args = (interval, interval * (per_minute - 1))

    async def take(self, key: str) -> float:
        waited = await self._script(keys=[f"genai:rate:{key}"], args=list(self._args))
        return int(waited) / 1_000_000
