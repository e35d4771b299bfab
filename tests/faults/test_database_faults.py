"""The gateway's database unavailable during uploads: PostgreSQL refusing connections (the
existing ones terminated, as in a failover) and SQLite locked by another writer. Uploads during
the outage are answered 503 with Retry-After (never 500, never left hanging); progress events
that arrive meanwhile wait on the broker and are applied afterwards: every accepted document is
indexed exactly once (the real ingest and retriever: chunk ids read back from the store).
PostgreSQL refuses connections for 30 s, SQLite stays locked for 45 s.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.faults.gateway_process import gateway, gateway_env, url_of
from tests.faults.platform import RetrieverProcess, Workers, document_effects, document_records, upload_text
from tests.support.eventually import eventually

pytestmark = pytest.mark.faults

POSTGRES_OUTAGE_SECONDS = 30.0
SQLITE_OUTAGE_SECONDS = 45.0
UPLOADS = 30
UPLOAD_DEADLINE = 15.0
ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def _postgres_answers() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", 5432)) == 0


async def _uploads_during(client: httpx.AsyncClient, outage: Callable[[], Awaitable[None]],
                          seconds: float) -> list[object]:
    async def one(delay: float) -> object:
        await asyncio.sleep(delay)
        try:
            return await upload_text(client)
        except httpx.TimeoutException:
            return "unanswered"

    spread = (seconds + 4) / UPLOADS
    replies, _ = await asyncio.gather(asyncio.gather(*(one(i * spread) for i in range(UPLOADS))), outage())
    return list(replies)


async def _run(what: str, env: dict[str, str], workers: Workers, retriever: RetrieverProcess, tmp_path: Path,
               outage: Callable[[], Awaitable[None]], seconds: float) -> None:
    workers.start_ingest()
    with gateway(env, tmp_path / "gateway.log") as service:
        async with httpx.AsyncClient(base_url=url_of(env), timeout=UPLOAD_DEADLINE) as client:
            replies = await _uploads_during(client, outage, seconds)
            accepted = [r.json()["id"] for r in replies if isinstance(r, httpx.Response) and r.status_code == 202]
            refused = [r for r in replies if isinstance(r, httpx.Response) and r.status_code == 503]
            other = [r.status_code if isinstance(r, httpx.Response) else r for r in replies
                     if not isinstance(r, httpx.Response) or r.status_code not in (202, 503)]

            final = await eventually(lambda: document_records(client, accepted),
                                     lambda r: all(d.get("status") == "indexed" for d in r.values()), within=180,
                                     every=1, what="every accepted document indexed")
            after = await upload_text(client)
        assert service.process.poll() is None, service.tail()
    lost, duplicated = document_effects(final, retriever)
    print(f"\n[{what}] injected: {seconds:g} s outage during {UPLOADS} uploads | 202: {len(accepted)}, "
          f"503+Retry-After: {len(refused)}, other: {other} | after: {after.status_code} | documents checked in "
          f"the store: {len(final)}, lost: {lost}, duplicated chunks: {duplicated}")
    assert other == [] and lost == duplicated == 0 and after.status_code == 202
    assert all(r.headers.get("retry-after") for r in refused)


@pytest.fixture
async def postgres_database() -> AsyncIterator[tuple[str, str]]:
    if not _postgres_answers():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    name = f"genai_faults_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield name, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def test_postgresql_refusing_connections_during_uploads(postgres_database, workers: Workers,
                                                              retriever: RetrieverProcess, vhost_url: str,
                                                              tmp_path: Path) -> None:
    name, url = postgres_database
    admin = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")

    async def outage() -> None:
        await asyncio.sleep(1.0)
        async with admin.connect() as connection:
            await connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            await connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                          "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
        await asyncio.sleep(POSTGRES_OUTAGE_SECONDS)
        async with admin.connect() as connection:
            await connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))

    env = gateway_env(tmp_path, vhost_url, database_url=url, gateway_database_wait_seconds=2,
                      retriever_addr=retriever.addr)
    try:
        await _run("PostgreSQL refusing connections", env, workers, retriever, tmp_path, outage,
                   POSTGRES_OUTAGE_SECONDS)
    finally:
        await admin.dispose()


async def test_sqlite_locked_during_uploads(workers: Workers, retriever: RetrieverProcess, vhost_url: str,
                                           tmp_path: Path) -> None:
    env = gateway_env(tmp_path, vhost_url, gateway_database_wait_seconds=2, retriever_addr=retriever.addr)

    async def outage() -> None:
        await asyncio.sleep(1.0)
        holder = sqlite3.connect(tmp_path / "gateway.db", isolation_level=None, check_same_thread=False)
        try:
            await asyncio.to_thread(holder.execute, "BEGIN EXCLUSIVE")
            await asyncio.sleep(SQLITE_OUTAGE_SECONDS)
            holder.execute("ROLLBACK")
        finally:
            holder.close()

    await _run("SQLite locked", env, workers, retriever, tmp_path, outage, SQLITE_OUTAGE_SECONDS)
