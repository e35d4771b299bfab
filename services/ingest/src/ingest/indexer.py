"""The ingest worker's small adapter over `genai.retriever.v1.RetrieverService` (IndexBatch, Index,
DeleteDocument).

Calls wait for the channel to become ready (a retriever restart is ridden out) but never longer
than their deadline; a failed call becomes a `ServiceError` (Unavailable, DeadlineExceeded, ...)
through `genai_common.grpc_client`. A retriever that predates IndexBatch (UNIMPLEMENTED: an older
version still serving during a rollout) is sent one Index call per document instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import grpc

from genai.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from genai_common.errors import InvalidInput
from genai_common.grpc_client import error_from_rpc, unary
from ingest.batching import IndexPart
from ingest.chunking import Chunk

log = logging.getLogger(__name__)

# How long a retriever without IndexBatch gets one Index call per document before batching is
# tried again (a rollout replaces it with one that has it).
BATCH_RETRY_SECONDS = 60.0


class RetrieverIndexer:
    def __init__(self, channel: grpc.aio.Channel, *, index_deadline: float, delete_deadline: float = 30.0) -> None:
        self._stub = retriever_pb2_grpc.RetrieverServiceStub(channel)
        self._index_deadline = index_deadline
        self._delete_deadline = delete_deadline
        self._batch_again_at = 0.0  # monotonic time; later while the retriever lacks IndexBatch

    async def index(self, document_id: str, source_name: str, chunks: Sequence[Chunk],
                    tenant: str = "default") -> int:
        """Upsert `tenant`'s chunks (the retriever derives point ids from document id + chunk index)."""
        request = _index_request(IndexPart(document_id, source_name, chunks, tenant))
        reply = await unary(self._stub.Index, request, deadline=self._index_deadline, peer="retriever",
                            wait_for_ready=True)
        return reply.indexed

    async def index_batch(self, parts: Sequence[IndexPart]) -> list[int | InvalidInput]:
        """Chunks indexed per part, or why the retriever refused that part; one call for all of them."""
        if time.monotonic() < self._batch_again_at:
            return [await self._index_alone(part) for part in parts]
        request = retriever_pb2.IndexBatchRequest(documents=[_index_request(part) for part in parts])
        try:
            reply = await self._stub.IndexBatch(request, timeout=self._index_deadline, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise error_from_rpc(exc, "retriever") from exc
            log.warning("the retriever has no IndexBatch (an older version?): one Index call per document "
                        "for the next %.0f s", BATCH_RETRY_SECONDS)
            self._batch_again_at = time.monotonic() + BATCH_RETRY_SECONDS
            return [await self._index_alone(part) for part in parts]
        return [InvalidInput(f"retriever: {r.error}") if r.error else r.indexed for r in reply.results]

    async def _index_alone(self, part: IndexPart) -> int | InvalidInput:
        try:
            return await self.index(part.document_id, part.source_name, part.chunks, part.tenant)
        except InvalidInput as refused:
            return refused

    async def delete_document(self, document_id: str) -> int:
        request = retriever_pb2.DeleteDocumentRequest(document_id=document_id)
        reply = await unary(self._stub.DeleteDocument, request, deadline=self._delete_deadline, peer="retriever",
                            wait_for_ready=True)
        return reply.deleted


def _index_request(part: IndexPart) -> retriever_pb2.IndexRequest:
    return retriever_pb2.IndexRequest(
        document_id=part.document_id, source_name=part.source_name, tenant=part.tenant,
        chunks=[retriever_pb2.Chunk(chunk_index=c.index, page=c.page, text=c.text) for c in part.chunks],
    )
