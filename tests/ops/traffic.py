"""Traffic through every feature of the platform, as a user and an operator would cause it: uploads
(indexed, deleted, and a poison message that ends in the dead-letter queue), search, chats (plain,
streamed, with a page to read, with a page the SSRF guard blocks), image and text jobs (finished
and cancelled), job event streams, lookups that miss; and the faults the canary checks must see."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aio_pika
import grpc
import httpx

from genai.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from genai_common.amqp import DOCUMENT_UPLOADED, EXCHANGE
from tests.ops.stack import Stack
from tests.support import rabbitmq

HANDBOOK = (b"Staff handbook.\n\nEvery employee receives twenty-eight days of paid annual leave per calendar year.\n\n"
            b"Remote work is allowed up to three days a week with the manager's agreement.\n")
QUESTION = "How many days of annual leave do staff get?"
BLOCKED_URL = "http://169.254.169.254/latest/meta-data/"  # cloud metadata: the scraper never fetches it
INGEST_DEAD_LETTERS = "ingest.document-uploaded.dlq"


def wait_for(probe: Callable[[], Any], what: str, within: float = 120.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {within:.0f} s waiting for {what}")


class Traffic:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.http = httpx.Client(base_url=stack.gateway, timeout=60)

    def close(self) -> None:
        self.http.close()

    # --- once: records, jobs, dead letters ------------------------------------------------------

    def setup(self) -> None:
        handbook = self._upload("handbook.txt", HANDBOOK)
        gone = self._upload("old.md", b"# Old policy\n\nSuperseded by the staff handbook.\n")
        for doc in (handbook, gone):
            wait_for(lambda d=doc: self._document(d)["status"] == "indexed", f"document {doc} indexed")
        assert self.http.delete(f"/v1/documents/{gone}").status_code == 200
        self._publish_poison()
        image = self._post("/v1/jobs/images", {"prompt": "a lighthouse at dawn", "n": 1, "size": "64x64", "steps": 2})
        cancelled = self._post("/v1/jobs/images", {"prompt": "a harbour at night", "n": 2, "size": "64x64",
                                                   "steps": 50})
        assert self.http.delete(f"/v1/jobs/{cancelled}").status_code == 200
        text = self._post("/v1/jobs/text", {"prompts": ["Say hello."]}, key="data")
        for job in (image, text, cancelled):
            wait_for(lambda j=job: self._job(j)["status"] in ("succeeded", "failed", "cancelled"), f"job {job} ends")
        assert self._job(image)["status"] == "succeeded", self._job(image)
        with self.http.stream("GET", f"/v1/jobs/{image}/events") as events:
            assert events.status_code == 200 and b"succeeded" in events.read()
        assert self.http.get(f"/v1/jobs/{image}/images/0").status_code == 200
        wait_for(lambda: rabbitmq.queue_depth(self.stack.amqp_url, INGEST_DEAD_LETTERS) >= 1,
                 "the poison message in the dead-letter queue")

    def _upload(self, name: str, body: bytes) -> str:
        reply = self.http.post("/v1/documents", files={"file": (name, body, "text/plain")})
        assert reply.status_code == 202, reply.text
        return str(reply.json()["id"])

    def _document(self, doc_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/v1/documents/{doc_id}").json())

    def _post(self, path: str, body: dict[str, Any], key: str = "") -> str:
        reply = self.http.post(path, json=body)
        assert reply.status_code == 202, reply.text
        data = reply.json()
        return str(data[key][0]["id"] if key else data["id"])

    def _job(self, job_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/v1/jobs/{job_id}").json())

    def _publish_poison(self) -> None:
        """A `document.uploaded` message that is not a DocumentUploaded: ingest gives up on it at once."""
        async def publish() -> None:
            connection = await aio_pika.connect(self.stack.amqp_url)
            async with connection:
                channel = await connection.channel(publisher_confirms=True)
                exchange = await channel.get_exchange(EXCHANGE)
                await exchange.publish(aio_pika.Message(b"\xff\x00 not protobuf", message_id="poison",
                                                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                                       routing_key=DOCUMENT_UPLOADED)
        asyncio.run(publish())

    # --- repeated: what the dashboards and the canary checks read -------------------------------

    def chats(self) -> list[int]:
        """One round of chats and reads; the statuses of the chats."""
        statuses = [
            self._chat(f"{QUESTION} And what does {self.stack.page_url} say about the museum?"),
            self._chat(QUESTION, stream=True),
            self._chat(f"{QUESTION} Also read {BLOCKED_URL}", stream=True),
        ]
        self.http.get("/v1/models")
        self.http.get("/v1/documents")
        self.http.post("/v1/search", json={"query": "annual leave"})
        self.http.get("/v1/jobs/00000000-0000-0000-0000-000000000000")
        return statuses

    def _chat(self, question: str, *, stream: bool = False) -> int:
        body = {"model": self.stack.llm.model, "messages": [{"role": "user", "content": question}]}
        if not stream:
            return self.http.post("/v1/chat/completions", json=body).status_code
        with self.http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as reply:
            reply.read()
            return reply.status_code

    def slow_indexing(self, calls: int = 4) -> None:
        """Index calls that outlive their callers' deadlines: the retriever reports DEADLINE_EXCEEDED."""
        chunks = [retriever_pb2.Chunk(chunk_index=i, page=1, text=HANDBOOK.decode() * 6) for i in range(24)]
        with grpc.insecure_channel(self.stack.retriever_grpc) as channel:
            stub = retriever_pb2_grpc.RetrieverServiceStub(channel)
            for call in range(calls):
                request = retriever_pb2.IndexRequest(document_id=f"slow-{call}", source_name="slow.txt", chunks=chunks)
                try:
                    stub.Index(request, timeout=0.05)
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED, exc
