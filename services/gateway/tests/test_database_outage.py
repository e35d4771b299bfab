"""The gateway's database unavailable for a while (here: SQLite locked by another writer, as a
PostgreSQL failover would refuse connections): requests that need it answer 503 with
Retry-After and keep nothing, and progress events that arrive meanwhile are applied once it is
back, a terminal one included (retried with back-off on the broker, never dead-lettered)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aio_pika
import pytest
from sqlalchemy.exc import DBAPIError
from test_documents_upload import HEADERS, multipart, tiny_pdf

from gateway.consumer import PROGRESS_QUEUE_NAME
from gateway.errors import is_database_outage
from genai.events.v1 import events_pb2
from tests.support.eventually import eventually

WAIT = 0.3  # GATEWAY_DATABASE_WAIT_SECONDS in these tests


@contextmanager
def database_locked(path: Path) -> Iterator[None]:
    """Another process's write transaction holds the SQLite database until the block ends."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


async def test_uploads_and_job_submissions_during_an_outage_are_503_with_retry_after(documents_gateway, tmp_path):
    gw = await documents_gateway(gateway_database_wait_seconds=WAIT)
    with database_locked(tmp_path / "gateway.db"):
        upload = await gw.client.post("/v1/documents", content=multipart(tiny_pdf()), headers=HEADERS)
        job = await gw.client.post("/v1/jobs/images", json={"prompt": "a lighthouse", "n": 1, "size": "64x64"})
    for reply in (upload, job):
        assert reply.status_code == 503, reply.text
        assert reply.headers["retry-after"] == "5"
        assert reply.json()["error"]["code"] == "database_unavailable"
    assert gw.stored_blobs() == [] and await gw.published() == []
    # Back: the same upload goes through.
    again = await gw.client.post("/v1/documents", content=multipart(tiny_pdf()), headers=HEADERS)
    assert again.status_code == 202, again.text
    assert [d["id"] for d in (await gw.client.get("/v1/documents")).json()["data"]] == [again.json()["id"]]


async def test_a_terminal_progress_event_during_an_outage_is_applied_when_the_database_is_back(
        documents_gateway, tmp_path, rabbit_url):
    gw = await documents_gateway(gateway_database_wait_seconds=WAIT)
    document_id = (await gw.client.post("/v1/documents", content=multipart(tiny_pdf()), headers=HEADERS)).json()["id"]
    event = events_pb2.JobProgress(kind=events_pb2.JOB_KIND_DOCUMENT, job_id=document_id,
                                   state=events_pb2.JOB_STATE_SUCCEEDED, progress=100, pages=1, chunks=3)
    connection = await aio_pika.connect(rabbit_url)
    async with connection:
        channel = await connection.channel()
        with database_locked(tmp_path / "gateway.db"):
            exchange = await channel.get_exchange("genai.events")
            await exchange.publish(aio_pika.Message(event.SerializeToString(), type=event.DESCRIPTOR.full_name,
                                                    content_type="application/x-protobuf"), "job.progress")
            async def waiting_for_retry() -> int:
                declared = await channel.declare_queue(f"{PROGRESS_QUEUE_NAME}.retry.1000ms", passive=True)
                return declared.declaration_result.message_count or 0

            await eventually(waiting_for_retry, within=10, what="the event waiting in the retry queue")
        document = await eventually(lambda: gw.client.get(f"/v1/documents/{document_id}"),
                                    lambda r: r.json()["status"] == "indexed", within=15, what="indexed")
        assert document.json()["chunks"] == 3


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(("sqlstate", "outage"), [
    ("55000", True),   # database "x" is not currently accepting connections (a failover)
    ("57P01", True),   # terminating connection due to administrator command
    ("08006", True),   # connection failure
    ("53300", True),   # too many connections
    ("42P01", False),  # undefined table: a bug, not an outage
    ("23505", False),  # unique violation
])
def test_postgresql_errors_that_mean_an_outage_are_told_from_bugs(sqlstate: str, outage: bool) -> None:
    error = DBAPIError("SELECT 1", {}, _DriverError(sqlstate))
    assert is_database_outage(error) is outage
