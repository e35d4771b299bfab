"""The retriever adapter against a retriever that predates IndexBatch (a rollout's older version)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from genai.retriever.v1 import retriever_pb2 as pb
from genai.retriever.v1 import retriever_pb2_grpc as pb_grpc
from genai_common.errors import InvalidInput
from ingest.batching import IndexPart
from ingest.chunking import Chunk
from ingest.indexer import RetrieverIndexer


class FakeOldRetriever(pb_grpc.RetrieverServiceServicer):
    """Index only: IndexBatch answers UNIMPLEMENTED, as a retriever built before it does."""

    def __init__(self) -> None:
        self.index_calls: list[str] = []

    async def Index(self, request: pb.IndexRequest, context: grpc.aio.ServicerContext) -> pb.IndexResponse:
        self.index_calls.append(request.document_id)
        if any(not c.text.strip() for c in request.chunks):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a chunk has no text")
        return pb.IndexResponse(indexed=len(request.chunks))


@pytest.fixture
async def old_retriever() -> AsyncIterator[tuple[FakeOldRetriever, grpc.aio.Channel]]:
    servicer = FakeOldRetriever()
    server = grpc.aio.server()
    pb_grpc.add_RetrieverServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield servicer, channel
    finally:
        await channel.close()
        await server.stop(None)


async def test_without_index_batch_each_document_gets_its_own_index_call(old_retriever) -> None:
    servicer, channel = old_retriever
    indexer = RetrieverIndexer(channel, index_deadline=10)
    parts = [IndexPart("a", "a.txt", [Chunk(0, 0, "alpha"), Chunk(1, 0, "beta")]),
             IndexPart("bad", "b.txt", [Chunk(0, 0, "  ")]),
             IndexPart("c", "c.txt", [Chunk(0, 0, "gamma")])]
    outcomes = await indexer.index_batch(parts)
    assert outcomes[0] == 2 and outcomes[2] == 1
    assert isinstance(outcomes[1], InvalidInput) and "no text" in outcomes[1].message
    assert servicer.index_calls == ["a", "bad", "c"]
    # Later calls go straight to Index (no UNIMPLEMENTED round trip each time).
    assert await indexer.index_batch(parts[:1]) == [2]
    assert servicer.index_calls[-1] == "a"
