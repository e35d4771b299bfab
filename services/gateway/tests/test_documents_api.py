"""Document list / status / delete / search, and how progress events move a record."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from gateway.clock import utcnow
from gateway.documents.tables import DocumentRow
from genai.events.v1 import events_pb2
from genai.retriever.v1 import retriever_pb2

BOUNDARY = "genai-api-boundary"
HEADERS = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def multipart(text: str, filename: str) -> bytes:
    return (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n\r\n'
            f"{text}\r\n--{BOUNDARY}--\r\n").encode()


async def upload(gw, name: str = "notes.txt", text: str = "Some text.") -> dict:
    reply = await gw.client.post("/v1/documents", content=multipart(text, name), headers=HEADERS)
    assert reply.status_code == 202, reply.text
    return reply.json()


def progress(doc_id: str, state: int, pct: int = 0, **fields) -> events_pb2.JobProgress:
    return events_pb2.JobProgress(job_id=doc_id, kind=events_pb2.JOB_KIND_DOCUMENT, state=state, progress=pct, **fields)


async def deliver(gw, event: events_pb2.JobProgress) -> None:
    """What the gateway's `job.progress` consumer does with one event, synchronously."""
    await gw.resources.progress.dispatch(event)


async def status_of(gw, doc_id: str) -> dict:
    return (await gw.client.get(f"/v1/documents/{doc_id}")).json()


async def test_listing_is_newest_first_and_pages_by_cursor_and_offset(documents_gateway) -> None:
    gw = await documents_gateway()
    ids = [(await upload(gw, f"doc{i}.txt"))["id"] for i in range(5)]
    newest_first = list(reversed(ids))
    first = (await gw.client.get("/v1/documents", params={"limit": 2})).json()
    assert [d["id"] for d in first["data"]] == newest_first[:2] and first["has_more"]
    second = (await gw.client.get("/v1/documents", params={"limit": 2, "after": first["next_after"]})).json()
    assert [d["id"] for d in second["data"]] == newest_first[2:4]
    last = (await gw.client.get("/v1/documents", params={"limit": 2, "after": second["next_after"]})).json()
    assert [d["id"] for d in last["data"]] == newest_first[4:] and not last["has_more"] and last["next_after"] is None
    by_offset = (await gw.client.get("/v1/documents", params={"limit": 3, "offset": 3})).json()
    assert [d["id"] for d in by_offset["data"]] == newest_first[3:]


@pytest.mark.parametrize(("params", "param"), [({"limit": 0}, "limit"), ({"limit": 1000}, "limit"),
                                               ({"offset": -1}, "offset")])
async def test_bad_list_parameters_are_422_naming_the_field(documents_gateway, params, param) -> None:
    gw = await documents_gateway()
    reply = await gw.client.get("/v1/documents", params=params)
    assert reply.status_code == 422 and reply.json()["error"]["param"] == param


async def test_unknown_ids_are_404(documents_gateway) -> None:
    gw = await documents_gateway()
    assert (await gw.client.get("/v1/documents/nope")).status_code == 404
    assert (await gw.client.delete("/v1/documents/00000000-0000-4000-8000-000000000000")).status_code == 404
    assert (await gw.client.get("/v1/documents", params={"after": "nope"})).status_code == 400


async def test_progress_only_moves_forward_and_is_idempotent(documents_gateway) -> None:
    gw = await documents_gateway()
    doc_id = (await upload(gw, "paper.pdf.txt"))["id"]
    await deliver(gw, progress(doc_id, events_pb2.JOB_STATE_RUNNING, 40, stage="embedding"))
    await deliver(gw, progress(doc_id, events_pb2.JOB_STATE_RUNNING, 10, stage="parsing"))  # late, stale
    doc = await status_of(gw, doc_id)
    assert (doc["status"], doc["progress"], doc["stage"]) == ("processing", 40, "embedding")
    done = progress(doc_id, events_pb2.JOB_STATE_SUCCEEDED, 100, pages=3, chunks=7,
                    stage_seconds={"parsing": 0.5, "chunking": 0.01, "embedding": 2.0})
    await deliver(gw, done)
    await deliver(gw, done)  # a duplicate
    await deliver(gw, progress(doc_id, events_pb2.JOB_STATE_RUNNING, 90, stage="embedding"))  # redelivered
    await deliver(gw, progress(doc_id, events_pb2.JOB_STATE_FAILED, reason="retriever unavailable"))
    doc = await status_of(gw, doc_id)
    assert (doc["status"], doc["progress"], doc["pages"], doc["chunks"], doc["reason"]) == ("indexed", 100, 3, 7, "")
    assert doc["stage_seconds"] == {"parsing": 0.5, "chunking": 0.01, "embedding": 2.0}


async def test_a_failure_says_why(documents_gateway) -> None:
    gw = await documents_gateway()
    doc_id = (await upload(gw))["id"]
    await deliver(gw, progress(doc_id, events_pb2.JOB_STATE_FAILED, reason="encrypted: the PDF needs a password"))
    await deliver(gw, progress(doc_id, events_pb2.JOB_STATE_RUNNING, 50, stage="parsing"))
    doc = await status_of(gw, doc_id)
    assert (doc["status"], doc["reason"]) == ("failed", "encrypted: the PDF needs a password")


async def test_delete_removes_record_blob_and_vectors(documents_gateway) -> None:
    gw = await documents_gateway()
    doc_id = (await upload(gw))["id"]
    reply = await gw.client.delete(f"/v1/documents/{doc_id}")
    assert reply.status_code == 200 and reply.json() == {"id": doc_id, "object": "document", "deleted": True}
    assert (await gw.client.get(f"/v1/documents/{doc_id}")).status_code == 404
    assert (await gw.client.get("/v1/documents")).json()["data"] == []
    assert gw.stored_blobs() == [] and gw.index.deleted == [doc_id]
    assert (await gw.client.delete(f"/v1/documents/{doc_id}")).status_code == 404


async def test_late_progress_for_a_deleted_document_deletes_vectors_instead_of_reviving_it(documents_gateway) -> None:
    gw = await documents_gateway()
    doc_id = (await upload(gw))["id"]
    await deliver(gw, progress(doc_id, events_pb2.JOB_STATE_RUNNING, 30, stage="embedding"))
    assert (await gw.client.delete(f"/v1/documents/{doc_id}")).status_code == 200
    await deliver(gw, progress(doc_id, events_pb2.JOB_STATE_SUCCEEDED, 100, chunks=4))
    assert (await gw.client.get(f"/v1/documents/{doc_id}")).status_code == 404
    assert gw.index.deleted == [doc_id, doc_id]


async def test_delete_while_the_retriever_is_down_hides_the_document_and_can_be_retried(documents_gateway) -> None:
    gw = await documents_gateway()
    doc_id = (await upload(gw))["id"]
    gw.index.down = True
    assert (await gw.client.delete(f"/v1/documents/{doc_id}")).status_code == 503
    assert (await gw.client.get(f"/v1/documents/{doc_id}")).status_code == 404
    gw.index.down = False
    assert (await gw.client.delete(f"/v1/documents/{doc_id}")).status_code == 200
    assert gw.index.deleted == [doc_id]
    assert (await gw.client.delete(f"/v1/documents/{doc_id}")).status_code == 404


async def test_search_returns_ranked_chunks_of_indexed_documents_with_their_names(documents_gateway) -> None:
    gw = await documents_gateway()
    indexed = (await upload(gw, "guide.md"))["id"]
    pending = (await upload(gw, "pending.txt"))["id"]
    await deliver(gw, progress(indexed, events_pb2.JOB_STATE_SUCCEEDED, 100, chunks=2))
    # The name shown is the record's, not whatever the index stored with the chunk.
    gw.index.add_hit(indexed, "name in the index.md", "The answer is 42.", 0.9)
    gw.index.add_hit(pending, "pending.txt", "Not ready yet.", 0.8)
    gw.index.add_hit(indexed, "name in the index.md", "More text.", 0.5)
    reply = await gw.client.post("/v1/search", json={"query": "answer", "top_k": 3, "mode": "hybrid",
                                                     "score_threshold": 0.1})
    assert reply.status_code == 200, reply.text
    hits = reply.json()["data"]
    assert [(h["document_id"], h["chunk_index"], h["name"]) for h in hits] == [(indexed, 0, "guide.md"),
                                                                              (indexed, 1, "guide.md")]
    assert hits[0]["score"] == pytest.approx(0.9) and hits[0]["text"] == "The answer is 42."
    [asked] = gw.index.searches
    assert (asked.query, asked.top_k, list(asked.document_ids)) == ("answer", 3, [])
    assert asked.mode == retriever_pb2.SEARCH_MODE_HYBRID and asked.score_threshold == pytest.approx(0.1)
    # Only the documents asked for are searched.
    reply = await gw.client.post("/v1/search", json={"query": "answer", "document_ids": [pending]})
    assert reply.json()["data"] == [] and list(gw.index.searches[-1].document_ids) == [pending]


@pytest.mark.parametrize(("body", "param"), [
    ({}, "query"), ({"query": ""}, "query"), ({"query": "x", "top_k": 0}, "top_k"),
    ({"query": "x", "mode": "fuzzy"}, "mode"), ({"query": "x", "document_ids": "abc"}, "document_ids"),
    ({"query": "x", "topk": 3}, "topk"),
])
async def test_bad_search_bodies_are_422_naming_the_field(documents_gateway, body, param) -> None:
    gw = await documents_gateway()
    reply = await gw.client.post("/v1/search", json=body)
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["param"] == param


async def test_search_when_the_retriever_is_down_is_503(documents_gateway) -> None:
    gw = await documents_gateway()
    gw.index.down = True
    reply = await gw.client.post("/v1/search", json={"query": "x"})
    assert reply.status_code == 503 and "retriever" in reply.json()["error"]["message"]


async def test_an_upload_that_died_before_its_confirm_is_cleaned_up_at_start(documents_gateway) -> None:
    gw = await documents_gateway()
    doc_id = (await upload(gw))["id"]
    # As if the gateway had died between writing the record and the broker's confirm, long ago.
    async with gw.resources.sessions.begin() as session:
        await session.execute(update(DocumentRow).where(DocumentRow.id == doc_id).values(
            published=False, created_at=utcnow() - timedelta(hours=1)))
    assert (await gw.client.get(f"/v1/documents/{doc_id}")).status_code == 404
    assert gw.stored_blobs() != []
    await documents_gateway()  # the next start, on the same database and blob store
    assert gw.stored_blobs() == []
    async with gw.resources.sessions() as session:
        assert await session.get(DocumentRow, doc_id) is None
