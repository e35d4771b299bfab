"""The gRPC edge: translates genai.retriever.v1 messages to domain calls and back."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from genai.retriever.v1 import retriever_pb2 as pb
from genai.retriever.v1 import retriever_pb2_grpc as pb_grpc
from genai_common.errors import InvalidInput
from retriever.domain import ChunkInput, DocumentChunks, ScoredChunk, SearchMode
from retriever.retrieval import Retriever

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RetrieverService"].full_name

_MODE_FROM_PB = {
    pb.SEARCH_MODE_DENSE: SearchMode.DENSE,
    pb.SEARCH_MODE_SPARSE: SearchMode.SPARSE,
    pb.SEARCH_MODE_HYBRID: SearchMode.HYBRID,
}
_MODE_TO_PB = {mode: value for value, mode in _MODE_FROM_PB.items()}


def mode_from_pb(value: pb.SearchMode) -> SearchMode | None:
    """The requested mode, None for "the server's default"; an unknown value is refused."""
    if value == pb.SEARCH_MODE_UNSPECIFIED:
        return None
    if value not in _MODE_FROM_PB:
        raise InvalidInput(f"unknown search mode {value}")
    return _MODE_FROM_PB[value]


def document_from_pb(request: pb.IndexRequest) -> DocumentChunks:
    chunks = [ChunkInput(chunk_index=c.chunk_index, page=c.page, text=c.text) for c in request.chunks]
    return DocumentChunks(request.document_id, request.source_name, chunks, request.tenant)


def hit_to_pb(hit: ScoredChunk) -> pb.Hit:
    return pb.Hit(
        chunk_id=hit.id, document_id=hit.document_id, source_name=hit.source_name, page=hit.page,
        chunk_index=hit.chunk_index, text=hit.text, score=hit.score,
    )


class RetrieverServicer(pb_grpc.RetrieverServiceServicer):
    def __init__(self, retriever: Retriever) -> None:
        self._retriever = retriever

    async def Search(self, request: pb.SearchRequest, context: grpc.aio.ServicerContext) -> pb.SearchResponse:
        result = await self._retriever.search(
            request.query, top_k=request.top_k,
            score_threshold=request.score_threshold if request.HasField("score_threshold") else None,
            document_ids=list(request.document_ids), mode=mode_from_pb(request.mode), tenant=request.tenant,
        )
        return pb.SearchResponse(hits=[hit_to_pb(h) for h in result.hits], mode=_MODE_TO_PB[result.mode])

    async def Index(self, request: pb.IndexRequest, context: grpc.aio.ServicerContext) -> pb.IndexResponse:
        document = document_from_pb(request)
        indexed = await self._retriever.index(document.document_id, document.source_name, document.chunks,
                                              tenant=document.tenant)
        return pb.IndexResponse(indexed=indexed)

    async def IndexBatch(
        self, request: pb.IndexBatchRequest, context: grpc.aio.ServicerContext,
    ) -> pb.IndexBatchResponse:
        outcomes = await self._retriever.index_batch([document_from_pb(d) for d in request.documents])
        return pb.IndexBatchResponse(results=[
            pb.IndexResult(error=o.message) if isinstance(o, InvalidInput) else pb.IndexResult(indexed=o)
            for o in outcomes
        ])

    async def DeleteDocument(
        self, request: pb.DeleteDocumentRequest, context: grpc.aio.ServicerContext,
    ) -> pb.DeleteDocumentResponse:
        return pb.DeleteDocumentResponse(deleted=await self._retriever.delete_document(request.document_id))

    async def ListChunkIds(
        self, request: pb.ListChunkIdsRequest, context: grpc.aio.ServicerContext,
    ) -> pb.ListChunkIdsResponse:
        return pb.ListChunkIdsResponse(chunk_ids=await self._retriever.chunk_ids(request.document_id))


def register(retriever: Retriever) -> Callable[[grpc.aio.Server], None]:
    """The `register` callback GrpcServer wants: adds the servicer to a grpc.aio server."""

    def _register(server: grpc.aio.Server) -> None:
        pb_grpc.add_RetrieverServiceServicer_to_server(RetrieverServicer(retriever), server)

    return _register
