"""Fixtures of the documents tests: the real app with SQLite, a blob folder and RabbitMQ (a
throw-away vhost), and `FakeIndex`, an in-process gRPC retriever reached through the real
`peers.py` client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import grpc
import pytest
from gateway_harness import Gateway, gateway_settings

from genai.retriever.v1 import retriever_pb2, retriever_pb2_grpc

UPLOADED = "document.uploaded"


class FakeIndex(retriever_pb2_grpc.RetrieverServiceServicer):
    """A retriever that holds `hits`: Search keeps those of the asked documents, cut to top_k;
    DeleteDocument records the document. With `down` set, every call fails UNAVAILABLE."""

    def __init__(self) -> None:
        self.hits: list[retriever_pb2.Hit] = []
        self.searches: list[retriever_pb2.SearchRequest] = []
        self.deleted: list[str] = []
        self.down = False

    def add_hit(self, document_id: str, document_name: str, text: str, score: float) -> None:
        index = sum(1 for h in self.hits if h.document_id == document_id)
        self.hits.append(retriever_pb2.Hit(chunk_id=f"{document_id}-{index}", document_id=document_id,
                                           source_name=document_name, chunk_index=index, text=text, score=score))

    async def _refuse_if_down(self, context: grpc.aio.ServicerContext) -> None:
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "fake backend is down")

    async def Search(self, request: retriever_pb2.SearchRequest,
                     context: grpc.aio.ServicerContext) -> retriever_pb2.SearchResponse:
        await self._refuse_if_down(context)
        self.searches.append(request)
        hits = [h for h in self.hits if not request.document_ids or h.document_id in request.document_ids]
        return retriever_pb2.SearchResponse(hits=hits[: request.top_k or len(hits)], mode=request.mode)

    async def DeleteDocument(self, request: retriever_pb2.DeleteDocumentRequest,
                             context: grpc.aio.ServicerContext) -> retriever_pb2.DeleteDocumentResponse:
        await self._refuse_if_down(context)
        self.deleted.append(request.document_id)
        return retriever_pb2.DeleteDocumentResponse(
            deleted=sum(1 for h in self.hits if h.document_id == request.document_id))


@pytest.fixture
async def fake_index() -> AsyncIterator[tuple[FakeIndex, str]]:
    """A FakeIndex on a grpc.aio server on 127.0.0.1, and its address."""
    index = FakeIndex()
    server = grpc.aio.server()
    retriever_pb2_grpc.add_RetrieverServiceServicer_to_server(index, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield index, f"127.0.0.1:{port}"
    await server.stop(0)


@dataclass
class DocumentsGateway(Gateway):
    index: FakeIndex
    blob_root: Path
    uploads: aio_pika.abc.AbstractQueue | None

    def stored_blobs(self) -> list[Path]:
        return [p for p in self.blob_root.rglob("*") if p.is_file()]

    async def published(self) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Every `document.uploaded` message published so far (taken off the test's queue)."""
        assert self.uploads is not None
        messages = []
        while (message := await self.uploads.get(fail=False, no_ack=True)) is not None:
            messages.append(message)
        return messages


async def _bind_uploads(amqp_url: str, stack: AsyncExitStack) -> aio_pika.abc.AbstractQueue:
    """A queue of the test's own that receives every `document.uploaded` (as ingest's would)."""
    connection = await aio_pika.connect(amqp_url)
    stack.push_async_callback(connection.close)
    channel = await connection.channel()
    # Exclusive: gone with this connection. (An auto-delete queue that is only ever read with
    # basic.get has no consumer to trigger its deletion, and a name built from id() can recur,
    # so an earlier test's messages would show up here.)
    queue = await channel.declare_queue(f"test.uploads.{uuid.uuid4().hex}", exclusive=True)
    await queue.bind("genai.events", routing_key=UPLOADED)
    return queue


@pytest.fixture
async def documents_gateway(tmp_path: Path, rabbit_url: str, fake_index: tuple[FakeIndex, str],
                            ) -> AsyncIterator[Callable[..., Awaitable[DocumentsGateway]]]:
    """`gw = await documents_gateway(bind_uploads=True, **settings)`: the app, its retriever a FakeIndex."""
    index, address = fake_index
    async with AsyncExitStack() as stack:
        async def make(bind_uploads: bool = True, amqp_url: str = rabbit_url, **overrides: Any) -> DocumentsGateway:
            settings = gateway_settings(tmp_path, amqp_url, retriever_addr=address, **overrides)
            started = await Gateway.start(settings, stack)
            uploads = await _bind_uploads(amqp_url, stack) if bind_uploads else None
            return DocumentsGateway(started.app, started.client, stack, index, tmp_path / "blobs", uploads)

        yield make
