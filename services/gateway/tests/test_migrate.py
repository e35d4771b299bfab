"""Migrations run once per release (`python -m gateway.migrate`); replicas that do not migrate
wait for the schema instead of racing each other, and say clearly what is missing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text

from gateway.db import alembic_config, migrate, open_engine, session_factory
from gateway.documents.store import DocumentStore
from gateway.jobs.store import JobStore
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


async def test_records_from_before_tenants_belong_to_the_default_tenant(tmp_path: Path) -> None:
    url = _url(tmp_path)
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0001_documents")
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0002_jobs")
    engine = open_engine(url)
    try:
        async with engine.begin() as connection:  # rows as the gateway wrote them before tenants
            await connection.execute(text(
                "INSERT INTO documents (id, name, media_type, size_bytes, sha256, blob_key, status, stage, progress,"
                " reason, pages, chunks, stage_seconds, published, vectors_purged, created_at, updated_at)"
                " VALUES ('doc-old', 'old.txt', 'text/plain', 3, '', 'documents/doc-old', 'indexed', '', 100, '',"
                " 0, 1, '{}', 1, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
            await connection.execute(text(
                "INSERT INTO jobs (id, kind, status, progress, stage, params, result_keys, error, idempotency_key,"
                " batch_index, created_at, updated_at) VALUES ('job-old', 'image', 'queued', 0, '', '{}', '[]', '',"
                " 'key-old', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        await migrate(url)
        sessions = session_factory(engine)
        assert (await DocumentStore(sessions).get("default", "doc-old")).name == "old.txt"
        assert await JobStore(sessions).get("job-old", "default") is not None
        assert await JobStore(sessions).get("job-old", "team-a") is None
    finally:
        await engine.dispose()
