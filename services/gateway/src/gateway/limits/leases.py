"""Things a key holds at once (chats, event streams): a lease per thing, refused past the limit.

`LocalLeases` counts in this process. `RedisLeases` keeps each key's leases in a Redis sorted
set scored by expiry, changed by atomic scripts, so replicas sharing the Redis share the count;
a lease a crashed replica never gave back expires after `ttl_seconds`.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from typing import Protocol

from redis.asyncio import Redis


class LeaseCounter(Protocol):
    async def acquire(self, key: str, limit: int) -> str | None: ...
    async def release(self, key: str, lease: str) -> None: ...


class LocalLeases:
    def __init__(self) -> None:
        self._held: defaultdict[str, int] = defaultdict(int)

    async def acquire(self, key: str, limit: int) -> str | None:
        if self._held[key] >= limit:
            return None
        self._held[key] += 1
        return "local"

    async def release(self, key: str, lease: str) -> None:
        self._held[key] -= 1
        if self._held[key] <= 0:
            del self._held[key]

    def held(self, key: str) -> int:
        return self._held.get(key, 0)


# KEYS[1] the key's set; ARGV: lease id, limit, ttl in ms. Returns 1 when the lease was taken.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


class RedisLeases:
    def __init__(self, redis: Redis, kind: str, ttl_seconds: float) -> None:
        self._redis = redis
        self._acquire = redis.register_script(_ACQUIRE)
        self._kind = kind
        self._ttl_ms = int(ttl_seconds * 1000)

    def _set(self, key: str) -> str:
        return f"genai:{self._kind}:{key}"

    async def acquire(self, key: str, limit: int) -> str | None:
        lease = secrets.token_hex(8)
        taken = await self._acquire(keys=[self._set(key)], args=[lease, limit, self._ttl_ms])
        return lease if int(taken) else None

    async def release(self, key: str, lease: str) -> None:
        await self._redis.zrem(self._set(key), lease)
