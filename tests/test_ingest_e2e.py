"""Documents end to end: gateway, ingest and retriever as real processes, the real RabbitMQ
(a vhost of its own), real blobs, SQL and Qdrant. Upload → indexed → searchable → deleted,
and what happens when the worker is killed, an event repeats or is unreadable, or the broker
drops every connection while users upload.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import grpc
import httpx
import pytest

from genai.events.v1 import events_pb2
from genai.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from genai_common.amqp import Amqp
from tests.support import rabbitmq
from tests.support.eventually import eventually
from tests.support.procs import ROOT, Service, free_port, grpc_serving, http_ok

pytestmark = pytest.mark.slow

INGEST_QUEUE = "ingest.document-uploaded"
ROBUSTNESS = Path(__file__).resolve().parents[2] / "shared" / "data" / "pdf-robustness" / "dev"
CHUNK_ID_NAMESPACE = uuid.UUID("6f1d3c52-8a0e-5b7e-9c41-2d7a9e0b4f13")  # the retriever's id scheme


def chunk_point_id(document_id: str, index: int) -> str:
    return str(uuid.uuid5(CHUNK_ID_NAMESPACE, f"{document_id}:{index}"))


def ingest_pdfs():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("ingest_pdfs", ROOT / "services/ingest/tests/ingest_pdfs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Stack:
    root: Path
    amqp_url: str
    gateway_url: str
    retriever_addr: str
    ingest_env: dict[str, str]
    ingest: Service
    services: list[Service]

    def start_ingest(self) -> Service:
        self.ingest = Service("ingest", self.ingest_env, self.root / "ingest.log")
        self.services.append(self.ingest)
        port = self.ingest_env["INGEST_METRICS_PORT"]
        self.ingest.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), timeout=60)
        return self.ingest

    def ingest_metric(self, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.ingest_env['INGEST_METRICS_PORT']}/metrics", timeout=5).text
        line = next((ln for ln in text.splitlines() if ln.startswith(f"{name} ")), None)
        return float(line.split()[-1]) if line else 0.0

    def chunk_ids(self, document_id: str) -> set[str]:
        with grpc.insecure_channel(self.retriever_addr) as channel:
            reply = retriever_pb2_grpc.RetrieverServiceStub(channel).ListChunkIds(
                retriever_pb2.ListChunkIdsRequest(document_id=document_id), timeout=30)
        return set(reply.chunk_ids)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("documents-e2e")
    with rabbitmq.temporary_vhost("e2e-docs") as amqp_url:
        retriever_port, gateway_port = free_port(), free_port()
        shared = {"AMQP_URL": amqp_url, "BLOB_STORE_URL": f"file://{root}/blobs",
                  "RETRIEVER_ADDR": f"127.0.0.1:{retriever_port}", "LOG_LEVEL": "INFO"}
        retriever = Service("retriever", {**shared, "RETRIEVER_PORT": str(retriever_port),
                                          "RETRIEVER_METRICS_PORT": str(free_port()),
                                          "QDRANT_PATH": str(root / "qdrant")}, root / "retriever.log")
        services = [retriever]
        ingest_env = {**shared, "INGEST_METRICS_PORT": str(free_port()), "INGEST_INDEX_BATCH": "32",
                      "SHUTDOWN_GRACE_SECONDS": "5"}
        built = Stack(root, amqp_url, f"http://127.0.0.1:{gateway_port}", shared["RETRIEVER_ADDR"], ingest_env,
                      ingest=None, services=services)  # type: ignore[arg-type]
        try:
            built.start_ingest()  # declares its queue before the gateway publishes into it
            gateway = Service("gateway", {**shared, "GATEWAY_PORT": str(gateway_port),
                                          "DATABASE_URL": f"sqlite+aiosqlite:///{root}/gateway.db",
                                          "SCRAPER_ADDR": f"127.0.0.1:{free_port()}"}, root / "gateway.log")
            services.append(gateway)
            gateway.wait_until(lambda: http_ok(f"{built.gateway_url}/readyz"), timeout=90)
            retriever.wait_until(lambda: grpc_serving(built.retriever_addr), timeout=240)
            yield built
        finally:
            for service in reversed(services):
                service.terminate()


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
        yield http


async def upload(client: httpx.AsyncClient, name: str, data: bytes) -> httpx.Response:
    return await client.post("/v1/documents", files={"file": (name, data, "application/octet-stream")})


async def document(client: httpx.AsyncClient, document_id: str) -> dict:
    return (await client.get(f"/v1/documents/{document_id}")).json()


async def wait_for(client: httpx.AsyncClient, document_id: str, statuses: set[str], within: float = 180.0) -> dict:
    return await eventually(lambda: document(client, document_id), lambda doc: doc.get("status") in statuses,
                            within=within, every=0.1, what=f"{document_id} in {statuses}")


async def test_pdf_is_indexed_cited_by_name_and_page_and_deleted_everywhere(
        stack: Stack, client: httpx.AsyncClient) -> None:
    pdfs = ingest_pdfs()
    pages = ["The harbour museum opens at nine in the morning.",
             "Guided tours of the old lighthouse start at eleven and last one hour.",
             "Tickets cost twelve euros; children enter free."]
    reply = await upload(client, "harbour guide.pdf", pdfs.text_pdf(pages))
    assert reply.status_code == 202, reply.text
    doc = await wait_for(client, reply.json()["id"], {"indexed", "failed"})
    assert doc["status"] == "indexed", doc
    assert doc["pages"] == 3 and doc["chunks"] >= 1 and doc["progress"] == 100
    assert set(doc["stage_seconds"]) == {"parsing", "chunking", "embedding"}
    assert stack.chunk_ids(doc["id"]) == {chunk_point_id(doc["id"], i) for i in range(doc["chunks"])}

    search = {"query": "when do lighthouse tours start", "top_k": 3}
    hits = (await client.post("/v1/search", json=search)).json()["data"]
    assert hits and hits[0]["document_id"] == doc["id"] and hits[0]["name"] == "harbour guide.pdf"
    assert "lighthouse" in hits[0]["text"] and 1 <= hits[0]["page"] <= 2

    assert (await client.delete(f"/v1/documents/{doc['id']}")).status_code == 200
    assert stack.chunk_ids(doc["id"]) == set()
    assert (await client.get(f"/v1/documents/{doc['id']}")).status_code == 404
    hits = (await client.post("/v1/search", json={"query": "when do lighthouse tours start"})).json()["data"]
    assert all(h["document_id"] != doc["id"] for h in hits)
    assert not list((stack.root / "blobs").rglob(doc["id"]))


async def test_killing_the_worker_mid_document_still_ends_indexed_with_every_chunk(
        stack: Stack, client: httpx.AsyncClient) -> None:
    text = "\n\n".join(
        f"Section {i}. The survey vessel number {i} measured a water temperature of {i % 30} degrees "
        f"near buoy {i * 3}, and the crew logged {i % 7} dolphins before returning to port." for i in range(900))
    reply = await upload(client, "survey log.txt", text.encode())
    assert reply.status_code == 202
    doc_id = reply.json()["id"]
    doc = await eventually(lambda: document(client, doc_id),
                           lambda d: d["status"] != "queued" and d["stage"] == "embedding" and d["progress"] > 25,
                           within=180, every=0.05, what="the document half embedded")
    assert doc["status"] == "processing", f"the document was not caught mid-way: {doc}"
    stack.ingest.kill()  # kill -9: no cleanup, the delivery goes back to the queue
    partial = len(stack.chunk_ids(doc_id))
    stack.start_ingest()
    done = await wait_for(client, doc_id, {"indexed", "failed"}, within=300)
    assert done["status"] == "indexed", done
    assert 0 < partial < done["chunks"]
    assert stack.chunk_ids(doc_id) == {chunk_point_id(doc_id, i) for i in range(done["chunks"])}


async def test_many_small_documents_at_once_are_each_indexed_whole_and_a_broken_one_fails_alone(
        stack: Stack, client: httpx.AsyncClient) -> None:
    # The worker holds several documents at once: each still ends with exactly its own chunks, and
    # one bad file among them fails by itself.
    notes = {f"note {i}.txt": (f"Field note {i}. The tide gauge at pier {i} read {i % 9} metres at dawn.\n\n"
                               f"The ferry number {i} left berth {i * 2} carrying {i * 3} passengers.").encode()
             for i in range(24)}
    broken = ingest_pdfs().encrypted_pdf("the key is under the mat", user_password="secret")
    calls_before = stack.ingest_metric("ingest_index_call_documents_count")
    replies = await asyncio.gather(*(upload(client, name, data) for name, data in notes.items()),
                                   upload(client, "locked.pdf", broken))
    assert all(r.status_code == 202 for r in replies), [r.text for r in replies if r.status_code != 202]
    ids = [r.json()["id"] for r in replies]
    docs = await asyncio.gather(*(wait_for(client, doc_id, {"indexed", "failed"}) for doc_id in ids))
    *indexed, locked = docs
    assert locked["status"] == "failed" and locked["reason"].startswith("encrypted"), locked
    assert all(doc["status"] == "indexed" and doc["chunks"] >= 1 for doc in indexed), indexed
    for doc in indexed:
        assert stack.chunk_ids(doc["id"]) == {chunk_point_id(doc["id"], i) for i in range(doc["chunks"])}
    hits = (await client.post("/v1/search", json={"query": "ferry number 17 passengers", "top_k": 1})).json()["data"]
    assert hits and hits[0]["name"] == "note 17.txt"
    # They shared the retriever's calls (IndexBatch) instead of one call each.
    calls = stack.ingest_metric("ingest_index_call_documents_count") - calls_before
    assert 1 <= calls < len(notes), calls


async def test_the_same_event_twice_gives_one_result(stack: Stack, client: httpx.AsyncClient) -> None:
    reply = await upload(client, "twice.md", b"# Twice\n\nThe same event delivered twice must index once.\n")
    doc = await wait_for(client, reply.json()["id"], {"indexed", "failed"})
    assert doc["status"] == "indexed"
    before = stack.chunk_ids(doc["id"])

    async def republish() -> None:
        async with Amqp(stack.amqp_url, name="e2e-test") as amqp:
            event = events_pb2.DocumentUploaded(document_id=doc["id"], blob_key=f"documents/{doc['id']}",
                                                sha256=doc["sha256"], filename=doc["name"],
                                                media_type=doc["media_type"], size_bytes=doc["size_bytes"])
            await amqp.publish("document.uploaded", event, message_id=doc["id"], headers={"document_id": doc["id"]})

    await republish()
    await eventually(lambda: asyncio.to_thread(rabbitmq.queue_depth, stack.amqp_url, INGEST_QUEUE),
                     lambda depth: depth == 0, within=60, every=0.2, what="the repeated event consumed")
    assert stack.chunk_ids(doc["id"]) == before
    again = await document(client, doc["id"])
    assert (again["status"], again["chunks"]) == ("indexed", doc["chunks"])


async def test_an_undecodable_event_is_dead_lettered_at_once_and_its_record_failed(
        stack: Stack, client: httpx.AsyncClient) -> None:
    assert stack.ingest.terminate() == 0, "SIGTERM should stop the worker cleanly"
    reply = await upload(client, "lost.txt", b"This event will be replaced by garbage.")
    assert reply.status_code == 202
    doc_id = reply.json()["id"]

    async def swap_for_garbage() -> None:
        connection = await aio_pika.connect(stack.amqp_url)
        async with connection:
            channel = await connection.channel()
            await (await channel.get_queue(INGEST_QUEUE)).purge()
            exchange = await channel.get_exchange("genai.events")
            await exchange.publish(aio_pika.Message(b"\x08\x96\x01garbage\xff", headers={"document_id": doc_id},
                                                    delivery_mode=2), "document.uploaded")

    await swap_for_garbage()
    stack.start_ingest()
    doc = await wait_for(client, doc_id, {"indexed", "failed"}, within=60)
    assert doc["status"] == "failed" and "could not be read" in doc["reason"]
    dead = await eventually(lambda: asyncio.to_thread(rabbitmq.queue_depth, stack.amqp_url, f"{INGEST_QUEUE}.dlq"),
                            within=30, every=0.2, what="the undecodable event dead-lettered")
    assert dead == 1


async def test_every_upload_accepted_during_a_broker_connection_drop_ends_indexed(
        stack: Stack, client: httpx.AsyncClient) -> None:
    """The broker drops every connection of the platform (as in a broker restart) mid-stream."""
    slots = asyncio.Semaphore(4)  # four users uploading at a time

    async def one(i: int) -> tuple[float, httpx.Response]:
        text = f"Note {i}: the ferry to island {i} leaves from pier {i % 5} at {8 + i % 10} o'clock."
        async with slots:
            started = time.monotonic()
            return started, await upload(client, f"ferry-{i}.txt", text.encode())

    first = [asyncio.create_task(one(i)) for i in range(8)]
    await asyncio.gather(*first[:4])
    dropped_at = time.monotonic()
    await asyncio.to_thread(rabbitmq.close_connections, stack.amqp_url)
    rest = [asyncio.create_task(one(i)) for i in range(8, 40)]
    replies = await asyncio.gather(*first, *rest)
    assert {r.status_code for _, r in replies} <= {202, 503}, [r.text for _, r in replies if r.status_code >= 400]
    accepted = [r.json()["id"] for _, r in replies if r.status_code == 202]
    assert any(started > dropped_at and r.status_code == 202 for started, r in replies), "uploads never recovered"
    for doc_id in accepted:
        assert (await wait_for(client, doc_id, {"indexed", "failed"}, within=240))["status"] == "indexed"
    listed = {d["id"] for d in (await client.get("/v1/documents", params={"limit": 100})).json()["data"]}
    assert set(accepted) <= listed
    # A refused upload left nothing behind: every stored blob belongs to a listed document.
    blobs = {p.name for p in (stack.root / "blobs" / "documents").iterdir()}
    assert blobs <= listed | await _all_ids(client)


async def _all_ids(client: httpx.AsyncClient) -> set[str]:
    ids: set[str] = set()
    params: dict = {"limit": 100}
    while True:
        page = (await client.get("/v1/documents", params=params)).json()
        ids |= {d["id"] for d in page["data"]}
        if not page["has_more"]:
            return ids
        params["after"] = page["next_after"]


ROBUSTNESS_SUBSET = {
    "sample-files/004-pdflatex-4-pages/pdflatex-4-pages.pdf": ("indexed", ""),
    "sample-files/005-libreoffice-writer-password/libreoffice-writer-password.pdf": ("failed", "encrypted"),
    "sample-files/007-imagemagick-images/imagemagick-CCITTFaxDecode.pdf": ("failed", "no extractable text"),
    "pdfjs/issue15590.pdf": ("failed", "malformed PDF"),
}


def _non_latin_file() -> str | None:
    for line in (ROBUSTNESS / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "non_latin" in row["tags"] and row["expected_class"] == "text" and row["size"] < 300_000:
            return row["id"]
    return None


@pytest.mark.skipif(not ROBUSTNESS.exists(), reason="the pdf-robustness data set is not on this machine")
async def test_representative_hostile_pdfs_end_in_the_expected_state(stack: Stack, client: httpx.AsyncClient) -> None:
    cases = dict(ROBUSTNESS_SUBSET)
    non_latin = _non_latin_file()
    assert non_latin, "the data set has no small non-Latin text file"
    cases[non_latin] = ("indexed", "")
    ids = {}
    for file_id in cases:
        reply = await upload(client, Path(file_id).name, (ROBUSTNESS / "files" / file_id).read_bytes())
        assert reply.status_code == 202, (file_id, reply.text)
        ids[file_id] = reply.json()["id"]
    for file_id, (status, reason) in cases.items():
        doc = await wait_for(client, ids[file_id], {"indexed", "failed"}, within=180)
        assert doc["status"] == status and doc["reason"].startswith(reason), (file_id, doc)
    assert stack.ingest.process.poll() is None, "the ingest worker died"
