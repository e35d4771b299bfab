"""Per-key limits hold across two gateway processes sharing one Redis, and one key hammering at
many times its limit leaves another key's requests untouched. Skips without Redis on 6379."""

from __future__ import annotations

import socket
import uuid

import httpx
import pytest


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _redis_answers(), reason="no Redis on 127.0.0.1:6379")


async def test_a_keys_requests_per_minute_are_counted_once_across_two_gateways(gateway) -> None:
    # Keys of this run's own: Redis outlives the test, and counts by key.
    suffix = uuid.uuid4().hex[:12]
    keys = f"team-a:sk-a-{suffix},team-b:sk-b-{suffix}"
    env = {"REDIS_URL": "redis://127.0.0.1:6379/0", "GATEWAY_KEY_REQUESTS_PER_MINUTE": "10",
           "GATEWAY_API_KEYS": keys}
    first, second = gateway("gw-1", **env), gateway("gw-2", **env)
    a = {"Authorization": f"Bearer sk-a-{suffix}"}
    b = {"Authorization": f"Bearer sk-b-{suffix}"}
    async with httpx.AsyncClient(timeout=10) as client:
        statuses = [(await client.get(f"{(first, second)[i % 2]}/v1/models", headers=a)).status_code
                    for i in range(100)]  # ten times the limit, alternating between the replicas
        assert statuses.count(200) == 10 and statuses.count(429) == 90, statuses
        refused = await client.get(f"{second}/v1/models", headers=a)
        assert refused.status_code == 429 and int(refused.headers["retry-after-ms"]) > 1000
        # The other key had no part in it: all of its requests, on either replica, go through.
        assert [(await client.get(f"{(first, second)[i % 2]}/v1/models", headers=b)).status_code
                for i in range(10)] == [200] * 10
