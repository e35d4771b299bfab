"""Load shedding at submission: a work queue at its length limit refuses the publish, and the
client gets 503 with Retry-After at once, with nothing kept; once the queue drains, uploads are
accepted again."""

from __future__ import annotations

import aio_pika
import pytest
from test_documents_upload import HEADERS, multipart, tiny_pdf

from genai_common.amqp import DOCUMENT_UPLOADED, Amqp, QueueSpec
from tests.support import rabbitmq

LIMIT = 2


@pytest.fixture
def bounded_vhost():
    with rabbitmq.temporary_vhost("gateway-bounded") as url:
        yield url


async def test_a_full_upload_queue_answers_503_with_retry_after_and_recovers_when_drained(
        documents_gateway, bounded_vhost) -> None:
    async with Amqp(bounded_vhost, name="test-ingest") as ingest:  # as ingest declares its queue
        await ingest.declare_queue(QueueSpec("ingest.bounded", (DOCUMENT_UPLOADED,), max_length=LIMIT))
    gw = await documents_gateway(bind_uploads=False, amqp_url=bounded_vhost)
    replies = [await gw.client.post("/v1/documents", content=multipart(tiny_pdf()), headers=HEADERS)
               for _ in range(LIMIT + 3)]
    accepted = [r for r in replies if r.status_code == 202]
    refused = [r for r in replies if r.status_code != 202]
    # A quorum queue checks its length before it enqueues, so it takes one past the limit.
    assert len(accepted) in (LIMIT, LIMIT + 1)
    for reply in refused:
        assert reply.status_code == 503, reply.text
        assert reply.headers["retry-after"] == "5"
        assert reply.json()["error"]["code"] == "queue_full"
    listed = {d["id"] for d in (await gw.client.get("/v1/documents")).json()["data"]}
    assert listed == {r.json()["id"] for r in accepted}  # the refused ones left no record
    assert len(gw.stored_blobs()) == len(accepted)  # ... and no blob

    async with await aio_pika.connect(bounded_vhost) as connection:  # ingest catches up
        queue = await (await connection.channel()).get_queue("ingest.bounded")
        await queue.purge()
    again = await gw.client.post("/v1/documents", content=multipart(tiny_pdf()), headers=HEADERS)
    assert again.status_code == 202, again.text
