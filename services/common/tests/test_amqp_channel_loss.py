"""Defect: a broker outage once left the gateway's SQLite database locked for minutes.

When a channel closes, aio-pika cancels the delivery callbacks running on it. A handler cancelled
in the middle of a database transaction could leave that transaction (and its SQLite write lock,
and its pooled connection) behind. The consumer now runs each handler shielded from the
channel's loss: the transaction always ends, and the message is redelivered and applied again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from test_amqp import _close_connection_named, _event

from genai.events.v1 import events_pb2
from genai_common.amqp import Amqp, QueueSpec, RetryPolicy, decode
from genai_common.errors import Unavailable
from tests.support.eventually import eventually


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/records.db", connect_args={"timeout": 1})
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE applied (job_id TEXT, delivery INTEGER)"))
    yield engine
    await engine.dispose()


async def test_a_handler_mid_transaction_when_the_connection_drops_finishes_it_and_leaves_no_lock(
        engine: AsyncEngine, rabbit_url: str) -> None:
    sessions = async_sessionmaker(engine)
    in_transaction, release = asyncio.Event(), asyncio.Event()
    deliveries = 0

    async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal deliveries
        deliveries += 1
        job_id = decode(message, events_pb2.JobProgress).job_id
        async with sessions.begin() as session:  # holds SQLite's write lock until it ends
            await session.execute(text("INSERT INTO applied VALUES (:j, :d)"), {"j": job_id, "d": deliveries})
            if deliveries == 1:
                in_transaction.set()
                await release.wait()

    name = f"test-channel-loss-{uuid.uuid4().hex[:8]}"
    spec = QueueSpec(f"test.{uuid.uuid4().hex[:10]}", routing_keys=(f"{name}.key",),
                     retry=RetryPolicy(attempts=3, first_delay_seconds=0.2, max_delay_seconds=0.4))
    async with Amqp(rabbit_url, name=name) as amqp:
        try:
            await amqp.consume(spec, handler)
            await amqp.publish(spec.routing_keys[0], _event("job-1"))
            await asyncio.wait_for(in_transaction.wait(), 10)
            _close_connection_named(name)  # the broker drops us while the transaction is open
            await eventually(lambda: not amqp.is_connected, within=10, what="the connection seen closed")
            release.set()

            # The database is writable at once: no transaction or connection was left behind.
            async with sessions.begin() as session:
                await session.execute(text("INSERT INTO applied VALUES ('other-writer', 0)"))
            await eventually(lambda: engine.pool.checkedout(), lambda n: n == 0,  # type: ignore[attr-defined]
                             within=5, what="every connection back in the pool")

            async def redelivered() -> int:
                try:  # publishing works again once the robust connection is back
                    await amqp.publish(spec.routing_keys[0], _event("after-reconnect"))
                except Unavailable:
                    return 0
                return 1

            await eventually(redelivered, within=30, every=0.2, what="the connection back")

            async def rows() -> list[tuple[str, int]]:
                async with sessions() as session:
                    result = await session.execute(text("SELECT job_id, delivery FROM applied ORDER BY delivery"))
                    return [(row[0], row[1]) for row in result]

            applied = await eventually(rows, lambda r: {j for j, _ in r} >= {"job-1", "after-reconnect"},
                                       within=30, what="the interrupted message redelivered and applied")
            # The first delivery's transaction ran to its end (committed): it was not interrupted.
            assert ("job-1", 1) in applied
        finally:
            await amqp.stop_consumers(5)
            async with await aio_pika.connect(rabbit_url) as connection:
                channel = await connection.channel()
                for queue in (spec.name, spec.dead_letter_queue, *map(spec.retry_queue, spec.retry.tiers())):
                    await channel.queue_delete(queue)
