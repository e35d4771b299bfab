"""The admission rules on their own, in process and in Redis (two Admissions sharing one Redis
are two gateway replicas); the Redis tests skip when no Redis answers on 127.0.0.1:6379."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.limits.admission import Admission, AdmissionLimits, Kind
from gateway.limits.leases import RedisLeases
from gateway.limits.rate import LocalRate, RedisRate
from genai_common.errors import RateLimited, Unavailable

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


needs_redis = pytest.mark.skipif(not _redis_answers(), reason="no Redis on 127.0.0.1:6379")


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL, socket_timeout=2)
    yield client
    await client.aclose()


def test_the_bucket_holds_a_minute_and_refills_steadily() -> None:
    rate = LocalRate(per_minute=60)
    assert all(rate.take_now("k", 100.0) == 0 for _ in range(60))
    assert rate.take_now("k", 100.0) == pytest.approx(1.0)  # one a second comes back
    assert rate.take_now("k", 101.0) == 0 and rate.take_now("k", 101.0) > 0
    assert rate.take_now("other", 101.0) == 0


async def test_event_streams_are_capped_per_key_and_overall() -> None:
    admission = Admission(AdmissionLimits(key_max_streams=2, max_streams=3))
    async with admission.admit("a", Kind.STREAM), admission.admit("a", Kind.STREAM):
        with pytest.raises(RateLimited):
            async with admission.admit("a", Kind.STREAM):
                pass
        async with admission.admit("b", Kind.STREAM):
            with pytest.raises(Unavailable):
                async with admission.admit("c", Kind.STREAM):
                    pass
            async with admission.admit("c", Kind.API):  # streams do not count as requests in flight
                pass
    assert admission.streams_open == 0 and admission.in_flight == 0


@needs_redis
async def test_requests_per_minute_hold_across_replicas_sharing_redis(redis: Redis) -> None:
    key = f"test-{uuid.uuid4().hex}"
    limits = AdmissionLimits(key_requests_per_minute=5)
    replicas = [Admission(limits, rate=RedisRate(redis, 5)) for _ in range(2)]
    admitted = 0
    for turn in range(8):
        try:
            async with replicas[turn % 2].admit(key, Kind.API):
                admitted += 1
        except RateLimited as exc:
            assert 10 < exc.retry_after <= 12  # five a minute: the next in about 12 s
    assert admitted == 5


@needs_redis
async def test_chats_in_flight_hold_across_replicas_sharing_redis(redis: Redis) -> None:
    key = f"test-{uuid.uuid4().hex}"
    limits = AdmissionLimits(key_max_chats=2)
    one, two = (Admission(limits, chats=RedisLeases(redis, "chats", 60)) for _ in range(2))
    async with one.admit(key, Kind.CHAT), two.admit(key, Kind.CHAT):
        with pytest.raises(RateLimited):
            async with one.admit(key, Kind.CHAT):
                pass
    async with two.admit(key, Kind.CHAT):  # given back when the chats ended
        pass


async def test_a_redis_that_is_down_falls_back_to_counting_here() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    down = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.5)
    admission = Admission(AdmissionLimits(key_requests_per_minute=2, key_max_chats=1),
                          rate=RedisRate(down, 2), chats=RedisLeases(down, "chats", 60))
    for _ in range(2):
        async with admission.admit("k", Kind.CHAT):
            pass
    with pytest.raises(RateLimited):
        async with admission.admit("k", Kind.API):
            pass
    await down.aclose()
