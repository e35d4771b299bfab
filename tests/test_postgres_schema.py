"""The gateway's one SQL code path also runs on PostgreSQL (the cluster's database)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.db import migrate, open_engine
from gateway.migrate import SchemaNotReady, newest_revisions, wait_for_schema

ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def _postgres_answers() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", 5432)) == 0


pytestmark = pytest.mark.skipif(not _postgres_answers(), reason="no PostgreSQL on 127.0.0.1:5432")


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    name = f"genai_test_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def test_migrations_create_every_table_and_are_rerunnable(database_url: str) -> None:
    await migrate(database_url)
    await migrate(database_url)  # a second start of the gateway must not fail
    engine = open_engine(database_url)
    try:
        async with engine.connect() as connection:
            tables = set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
            heads = {row[0] for row in await connection.execute(text("SELECT version_num FROM alembic_version"))}
    finally:
        await engine.dispose()
    assert {"documents", "jobs"} <= tables, tables
    assert heads == newest_revisions(database_url)  # every branch at its newest revision


async def test_replicas_wait_for_the_release_migration_on_postgresql(database_url: str) -> None:
    with pytest.raises(SchemaNotReady):
        await wait_for_schema(database_url, wait_seconds=0.5)
    await migrate(database_url)  # what the chart's migration Job runs
    await wait_for_schema(database_url, wait_seconds=5)
