"""Migrations run once per release (`python -m gateway.migrate`); replicas that do not migrate
wait for the schema instead of racing each other, and say clearly what is missing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from gateway.db import migrate, open_engine
from gateway.migrate import SchemaNotReady, applied_revisions, ensure_schema, newest_revisions, wait_for_schema
from gateway.settings import GatewaySettings


def _url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/gateway.db"


async def _tables(url: str) -> set[str]:
    engine = open_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


def test_the_migration_command_creates_the_schema_and_can_run_again(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": _url(tmp_path), "LOG_LEVEL": "WARNING"}
    for _ in range(2):  # a re-run release (helm upgrade) must not fail
        done = subprocess.run([sys.executable, "-m", "gateway.migrate"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
    assert {"documents", "jobs"} <= asyncio.run(_tables(_url(tmp_path)))


async def test_a_replica_that_does_not_migrate_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    settings = GatewaySettings(database_url=_url(tmp_path), gateway_migrate_on_start=False,
                               gateway_schema_wait_seconds=0.5)
    with pytest.raises(SchemaNotReady, match="gateway.migrate"):
        await ensure_schema(settings)
    assert "jobs" not in await _tables(_url(tmp_path))  # it waited; it did not migrate


async def test_a_waiting_replica_starts_once_the_migration_has_run(tmp_path: Path) -> None:
    url = _url(tmp_path)
    waiting = asyncio.create_task(wait_for_schema(url, wait_seconds=60))
    await asyncio.sleep(0)  # the replica is waiting before the Job runs
    assert not waiting.done()
    await migrate(url)
    await asyncio.wait_for(waiting, 30)
    engine = open_engine(url)
    try:
        assert await applied_revisions(engine) == newest_revisions(url)
    finally:
        await engine.dispose()


async def test_one_machine_migrates_at_start(tmp_path: Path) -> None:
    await ensure_schema(GatewaySettings(database_url=_url(tmp_path)))
    assert {"documents", "jobs"} <= await _tables(_url(tmp_path))
