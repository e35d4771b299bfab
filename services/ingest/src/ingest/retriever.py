"""The ingest worker's small adapter over `genai.retriever.v1.RetrieverService` (Index, DeleteDocument).

Calls wait for the channel to become ready (a retriever restart is ridden out) but never longer
than their deadline; a failed call becomes a `ServiceError` (Unavailable, DeadlineExceeded, ...)
through `genai_common.grpc_client.error_from_rpc`. (The gateway's `peers.RetrieverClient` is the
same adapter for the gateway; services do not import each other, so this one stays here.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from genai.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from genai_common.grpc_client import error_from_rpc
from ingest.chunking import Chunk

T = TypeVar("T")


async def _call(method: Callable[..., Awaitable[T]], request: Any, deadline: float) -> T:
    try:
        return await method(request, timeout=deadline, wait_for_ready=True)
    except grpc.aio.AioRpcError as exc:
        raise error_from_rpc(exc, "retriever") from exc


class RetrieverIndexer:
    def __init__(self, channel: grpc.aio.Channel, *, index_deadline: float, delete_deadline: float = 30.0) -> None:
        self._stub = retriever_pb2_grpc.RetrieverServiceStub(channel)
        self._index_deadline = index_deadline
        self._delete_deadline = delete_deadline

    async def index(self, document_id: str, source_name: str, chunks: Sequence[Chunk]) -> int:
        """Upsert chunks (the retriever derives point ids from document id + chunk index)."""
        request = retriever_pb2.IndexRequest(
            document_id=document_id, source_name=source_name,
            chunks=[retriever_pb2.Chunk(chunk_index=c.index, page=c.page, text=c.text) for c in chunks],
        )
        return (await _call(self._stub.Index, request, self._index_deadline)).indexed

    async def delete_document(self, document_id: str) -> int:
        request = retriever_pb2.DeleteDocumentRequest(document_id=document_id)
        return (await _call(self._stub.DeleteDocument, request, self._delete_deadline)).deleted
