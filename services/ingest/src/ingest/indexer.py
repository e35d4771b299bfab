"""The ingest worker's small adapter over `genai.retriever.v1.RetrieverService` (Index, DeleteDocument).

Calls wait for the channel to become ready (a retriever restart is ridden out) but never longer
than their deadline; a failed call becomes a `ServiceError` (Unavailable, DeadlineExceeded, ...)
through `genai_common.grpc_client.unary`.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from genai.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from genai_common.grpc_client import unary
from ingest.chunking import Chunk


class RetrieverIndexer:
    def __init__(self, channel: grpc.aio.Channel, *, index_deadline: float, delete_deadline: float = 30.0) -> None:
        self._stub = retriever_pb2_grpc.RetrieverServiceStub(channel)
        self._index_deadline = index_deadline
        self._delete_deadline = delete_deadline

    async def index(self, document_id: str, source_name: str, chunks: Sequence[Chunk],
                    tenant: str = "default") -> int:
        """Upsert `tenant`'s chunks (the retriever derives point ids from document id + chunk index)."""
        request = retriever_pb2.IndexRequest(
            document_id=document_id, source_name=source_name, tenant=tenant,
            chunks=[retriever_pb2.Chunk(chunk_index=c.index, page=c.page, text=c.text) for c in chunks],
        )
        reply = await unary(self._stub.Index, request, deadline=self._index_deadline, peer="retriever",
                            wait_for_ready=True)
        return reply.indexed

    async def delete_document(self, document_id: str) -> int:
        request = retriever_pb2.DeleteDocumentRequest(document_id=document_id)
        reply = await unary(self._stub.DeleteDocument, request, deadline=self._delete_deadline, peer="retriever",
                            wait_for_ready=True)
        return reply.deleted
