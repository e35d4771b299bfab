"""The ingest consumer against the real RabbitMQ: ack after the effect, retry, dead-letter, shutdown."""

from __future__ import annotations

import asyncio
import time
import uuid

from ingest_pdfs import blank_pdf, encrypted_pdf
from prometheus_client import REGISTRY

from genai.events.v1 import events_pb2
from ingest.extract import NO_TEXT
from tests.support.eventually import eventually

SUCCEEDED, FAILED, RUNNING = events_pb2.JOB_STATE_SUCCEEDED, events_pb2.JOB_STATE_FAILED, events_pb2.JOB_STATE_RUNNING
TEXT = " ".join(f"Paragraph {i} tells how the lighthouse keeper logged ship number {i}." for i in range(60))


def new_id() -> str:
    return str(uuid.uuid4())


async def test_a_document_is_indexed_and_reported_step_by_step(ingest_rig) -> None:
    await ingest_rig.start()
    doc = new_id()
    await ingest_rig.upload(doc, TEXT.encode())
    done = await ingest_rig.wait_for(doc, {SUCCEEDED, FAILED})
    assert done.state == SUCCEEDED, done.reason
    chunks = ingest_rig.indexer.chunks_of(doc)
    assert done.chunks == len(chunks) > 4 and [c.index for c in chunks] == list(range(len(chunks)))
    assert set(done.stage_seconds) == {"parsing", "chunking", "embedding"}
    running = [e for e in ingest_rig.history(doc) if e.state == RUNNING]
    assert [e.stage for e in running][:3] == ["parsing", "chunking", "embedding"]
    assert [e.progress for e in running] == sorted(e.progress for e in running)
    assert await ingest_rig.ready_messages() == 0


async def test_the_same_event_twice_gives_one_result(ingest_rig) -> None:
    await ingest_rig.start()
    doc = new_id()
    event = await ingest_rig.upload(doc, TEXT.encode())
    await ingest_rig.wait_for(doc, {SUCCEEDED})
    first = ingest_rig.indexer.chunks_of(doc)
    ingest_rig.events.clear()
    await ingest_rig.publish(event)
    again = await ingest_rig.wait_for(doc, {SUCCEEDED})
    assert ingest_rig.indexer.chunks_of(doc) == first and again.chunks == len(first)


async def test_unreadable_documents_fail_with_a_reason_and_are_not_retried(ingest_rig) -> None:
    await ingest_rig.start()
    cases = {new_id(): (encrypted_pdf("Secret.", user_password="pw"), "encrypted"),
             new_id(): (blank_pdf(2), NO_TEXT),
             new_id(): (b"   \n\n\t ", NO_TEXT)}
    for doc, (data, _) in cases.items():
        await ingest_rig.upload(doc, data, "application/pdf" if data.startswith(b"%PDF") else "text/plain")
    for doc, (_, reason) in cases.items():
        failed = await ingest_rig.wait_for(doc, {SUCCEEDED, FAILED})
        assert failed.state == FAILED and failed.reason.startswith(reason)
    assert ingest_rig.indexer.calls == 0
    assert await ingest_rig.ready_messages() == 0
    assert await ingest_rig.ready_messages(ingest_rig.spec.dead_letter_queue) == 0  # failed, not dead-lettered


async def test_a_deleted_document_is_acked_without_indexing_and_leaves_no_vectors(ingest_rig) -> None:
    await ingest_rig.start()
    doc = new_id()
    event = events_pb2.DocumentUploaded(document_id=doc, blob_key=f"documents/{doc}", media_type="text/plain")
    await ingest_rig.publish(event)
    await eventually(lambda: ingest_rig.indexer.deleted, what="the document's vectors deleted")
    assert ingest_rig.indexer.deleted == [doc] and ingest_rig.indexer.calls == 0
    assert await ingest_rig.ready_messages() == 0


async def test_an_undecodable_body_is_dead_lettered_at_once_and_its_record_failed(ingest_rig) -> None:
    await ingest_rig.start()
    doc = new_id()
    await ingest_rig.publish_raw(b"\xff\xfe definitely not protobuf", {"document_id": doc})
    failed = await ingest_rig.wait_for(doc, {FAILED})
    assert "could not be read" in failed.reason
    [dead] = await ingest_rig.dead_letters(1)
    assert dead.headers["document_id"] == doc and dead.headers["x-first-death-reason"] == "rejected"


async def test_a_message_that_keeps_failing_is_dead_lettered_after_the_limit_and_says_why(ingest_rig) -> None:
    ingest_rig.indexer.fail = True
    await ingest_rig.start()
    doc = new_id()
    await ingest_rig.upload(doc, TEXT.encode())
    failed = await ingest_rig.wait_for(doc, {FAILED, SUCCEEDED})
    assert failed.state == FAILED
    assert failed.reason.startswith("gave up after 3 attempts")
    assert failed.reason.endswith(": retriever: fake retriever is down")
    assert ingest_rig.indexer.calls == 3  # the rig's retry policy allows 3 attempts
    [dead] = await ingest_rig.dead_letters(1)
    assert dead.message_id == doc


async def test_stopping_mid_document_requeues_it_and_a_new_consumer_finishes_it(ingest_rig) -> None:
    ingest_rig.indexer.gate = asyncio.Event()
    await ingest_rig.start()
    doc = new_id()
    await ingest_rig.upload(doc, TEXT.encode())
    await eventually(lambda: ingest_rig.indexer.calls, what="the first Index call")
    assert ingest_rig.indexer.calls == 1
    await ingest_rig.amqp.stop_consumers(0.1)  # SIGTERM with a short grace: in-flight work goes back
    assert await eventually(ingest_rig.ready_messages, what="the document back in its queue") == 1
    ingest_rig.indexer.gate.set()
    await ingest_rig.start()
    done = await ingest_rig.wait_for(doc, {SUCCEEDED})
    assert done.chunks == len(ingest_rig.indexer.chunks_of(doc))


async def test_a_blob_that_does_not_match_its_checksum_is_not_indexed(ingest_rig) -> None:
    await ingest_rig.start()
    doc = new_id()
    event = await ingest_rig.upload(doc, TEXT.encode())
    await ingest_rig.wait_for(doc, {SUCCEEDED})
    await ingest_rig.blobs.put(event.blob_key, b"tampered with")
    other = new_id()
    await ingest_rig.blobs.put(f"documents/{other}", b"tampered with")
    await ingest_rig.publish(events_pb2.DocumentUploaded(document_id=other, blob_key=f"documents/{other}",
                                                         media_type="text/plain", sha256=event.sha256))
    failed = await ingest_rig.wait_for(other, {FAILED, SUCCEEDED})
    assert failed.state == FAILED and "checksum" in failed.reason
    assert ingest_rig.indexer.chunks_of(other) == []


async def test_a_document_the_retriever_refuses_fails_at_once_without_retries(ingest_rig) -> None:
    ingest_rig.indexer.refuse = True
    await ingest_rig.start()
    doc = new_id()
    await ingest_rig.upload(doc, TEXT.encode())
    failed = await ingest_rig.wait_for(doc, {FAILED, SUCCEEDED})
    assert failed.reason == "the retriever refused the document: retriever: chunk text too long"
    assert ingest_rig.indexer.calls == 1
    assert await ingest_rig.ready_messages(ingest_rig.spec.dead_letter_queue) == 0


async def test_the_wait_since_the_upload_is_measured_once_per_document(ingest_rig) -> None:
    await ingest_rig.start()
    before = _wait_samples()
    doc = new_id()
    event = await ingest_rig.upload(doc, TEXT.encode())
    await ingest_rig.wait_for(doc, {SUCCEEDED, FAILED})
    assert _wait_samples() == before  # an event without its upload time is not measured
    doc = new_id()
    await ingest_rig.blobs.put(f"documents/{doc}", TEXT.encode())
    waited = events_pb2.DocumentUploaded()
    waited.CopyFrom(event)
    waited.document_id, waited.blob_key = doc, f"documents/{doc}"
    waited.uploaded_at.FromSeconds(int(time.time()) - 30)  # uploaded half a minute ago
    await ingest_rig.publish(waited)
    await ingest_rig.wait_for(doc, {SUCCEEDED, FAILED})
    count, total = _wait_samples()
    assert count == before[0] + 1 and 29 <= total - before[1] < 60


def _wait_samples() -> tuple[float, float]:
    return (REGISTRY.get_sample_value("ingest_queue_wait_seconds_count") or 0.0,
            REGISTRY.get_sample_value("ingest_queue_wait_seconds_sum") or 0.0)


async def test_the_tenant_of_the_upload_is_indexed_with_its_chunks(ingest_rig) -> None:
    await ingest_rig.start()
    mine, legacy = new_id(), new_id()
    await ingest_rig.blobs.put(f"documents/{mine}", TEXT.encode())
    await ingest_rig.publish(events_pb2.DocumentUploaded(document_id=mine, blob_key=f"documents/{mine}",
                                                         media_type="text/plain", tenant="team-a"))
    await ingest_rig.upload(legacy, TEXT.encode())  # an event from before tenants: no tenant field
    for doc in (mine, legacy):
        assert (await ingest_rig.wait_for(doc, {SUCCEEDED, FAILED})).state == SUCCEEDED
    assert ingest_rig.indexer.tenants == {mine: "team-a", legacy: "default"}
