"""RetrieverService over a real in-process grpc.aio server, the real MiniLM model and the embedded engine."""

from __future__ import annotations

from contextlib import AsyncExitStack

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from genai.retriever.v1 import retriever_pb2 as pb
from genai.retriever.v1 import retriever_pb2_grpc as pb_grpc
from genai_common.grpc_server import GrpcServer
from retriever.app import build_grpc_server, open_retriever
from retriever.domain import ChunkInput, SearchMode, chunk_point_id
from retriever.embedding import SentenceTransformerEmbedder
from retriever.retrieval import Retriever
from retriever.servicer import SERVICE_NAME
from retriever.settings import RetrieverSettings

MANUAL = [
    "To reset the router, hold the power button for ten seconds until the lights blink.",
    "The warranty covers hardware faults for two years from the date of purchase.",
    "Firmware updates are downloaded automatically every night at 3 am.",
]
RECIPES = [
    "Preheat the oven to 200 degrees and bake the bread for forty minutes.",
    "Whisk the eggs with sugar until the mixture is pale and fluffy.",
]
MINUTES = [
    "The committee reviewed the quarterly budget, approved the new cafeteria menu, discussed parking allocation "
    "for the winter months and agreed to repaint the lobby; Brannigan seconded the motion.",
    "Attendance was taken and the previous minutes were approved without changes.",
]
PEOPLE = [
    "Our team lead is a friendly engineer who enjoys hiking.",
    "The new intern introduced herself and her background in physics.",
    "Mr. Smith, Ms. Jones and Dr. Patel joined the call.",
]
PETS = ["The feline slept peacefully on the woven rug by the fireplace.", "Dogs need a daily walk and fresh water."]

TIMEOUT = 30


def index_request(document_id: str, texts: list[str], source: str | None = None, tenant: str = "") -> pb.IndexRequest:
    return pb.IndexRequest(
        document_id=document_id, source_name=source or f"{document_id}.pdf",
        chunks=[pb.Chunk(chunk_index=i, page=i + 1, text=t) for i, t in enumerate(texts)], tenant=tenant,
    )


async def index(stub: pb_grpc.RetrieverServiceStub, document_id: str, texts: list[str], tenant: str = "") -> int:
    reply = await stub.Index(index_request(document_id, texts, tenant=tenant), timeout=TIMEOUT)
    return reply.indexed


async def search(stub: pb_grpc.RetrieverServiceStub, query: str, **fields) -> pb.SearchResponse:
    return await stub.Search(pb.SearchRequest(query=query, **fields), timeout=TIMEOUT)


async def test_index_then_search_finds_the_right_chunk_with_its_source_and_page(stub) -> None:
    assert await index(stub, "manual", MANUAL) == 3
    assert await index(stub, "recipes", RECIPES) == 2
    for mode in (pb.SEARCH_MODE_UNSPECIFIED, pb.SEARCH_MODE_DENSE, pb.SEARCH_MODE_HYBRID):
        reply = await search(stub, "how do I restart my router?", top_k=2, mode=mode)
        top = reply.hits[0]
        assert (top.document_id, top.source_name, top.page, top.chunk_index) == ("manual", "manual.pdf", 1, 0)
        assert top.text == MANUAL[0]
        assert top.chunk_id == chunk_point_id("manual", 0)
        assert len(reply.hits) == 2
    default = await search(stub, "how do I restart my router?")
    assert default.mode == pb.SEARCH_MODE_HYBRID  # the server's default mode is reported back


async def test_reindexing_a_document_is_idempotent(stub) -> None:
    assert await index(stub, "manual", MANUAL) == 3
    first = (await stub.ListChunkIds(pb.ListChunkIdsRequest(document_id="manual"), timeout=TIMEOUT)).chunk_ids
    assert await index(stub, "manual", MANUAL) == 3
    second = (await stub.ListChunkIds(pb.ListChunkIdsRequest(document_id="manual"), timeout=TIMEOUT)).chunk_ids
    assert list(first) == list(second) == [chunk_point_id("manual", i) for i in range(3)]
    reply = await search(stub, "router reset power button", top_k=10, mode=pb.SEARCH_MODE_DENSE)
    assert len(reply.hits) == 3  # no duplicates after the second index


async def test_document_filter_restricts_hits_to_those_documents(stub) -> None:
    await index(stub, "manual", MANUAL)
    await index(stub, "recipes", RECIPES)
    for mode in (pb.SEARCH_MODE_DENSE, pb.SEARCH_MODE_SPARSE, pb.SEARCH_MODE_HYBRID):
        reply = await search(stub, "bake bread in the oven", top_k=10, document_ids=["manual"], mode=mode)
        assert {h.document_id for h in reply.hits} <= {"manual"}
    reply = await search(stub, "bake bread in the oven", top_k=10, document_ids=["manual", "recipes"])
    assert reply.hits[0].document_id == "recipes"


async def test_each_tenant_searches_only_its_own_chunks(stub) -> None:
    await index(stub, "acme-manual", MANUAL, tenant="acme")
    await index(stub, "globex-manual", MANUAL, tenant="globex")
    await index(stub, "shared-recipes", RECIPES)  # no tenant: the default one
    query = "how do I restart my router?"
    for mode in (pb.SEARCH_MODE_DENSE, pb.SEARCH_MODE_SPARSE, pb.SEARCH_MODE_HYBRID):
        for tenant, document in (("acme", "acme-manual"), ("globex", "globex-manual"), ("", "shared-recipes"),
                                 ("default", "shared-recipes")):
            hits = (await search(stub, query + " bake bread", top_k=20, mode=mode, tenant=tenant)).hits
            assert hits and {h.document_id for h in hits} == {document}, (mode, tenant)
        # Another tenant's document named explicitly is still out of reach.
        assert not (await search(stub, query, mode=mode, tenant="acme", document_ids=["globex-manual"])).hits
        assert not (await search(stub, query, mode=mode, tenant="initech")).hits
    # The threshold path (dense cosines of fused hits) stays inside the tenant too.
    hybrid = await search(stub, query, top_k=20, mode=pb.SEARCH_MODE_HYBRID, tenant="acme", score_threshold=-1)
    assert {h.document_id for h in hybrid.hits} == {"acme-manual"}


async def test_score_threshold_drops_weak_hits(stub) -> None:
    await index(stub, "manual", MANUAL)
    await index(stub, "recipes", RECIPES)
    query = "how do I restart my router?"
    loose = await search(stub, query, top_k=5, mode=pb.SEARCH_MODE_DENSE)
    assert len(loose.hits) == 5
    cut = (loose.hits[0].score + loose.hits[1].score) / 2
    strict = await search(stub, query, top_k=5, mode=pb.SEARCH_MODE_DENSE, score_threshold=cut)
    assert [h.chunk_id for h in strict.hits] == [loose.hits[0].chunk_id]
    # Hybrid applies the threshold to each hit's dense cosine: the same cut keeps the same single chunk.
    hybrid = await search(stub, query, top_k=5, mode=pb.SEARCH_MODE_HYBRID, score_threshold=cut)
    assert [h.chunk_id for h in hybrid.hits] == [loose.hits[0].chunk_id]
    assert not (await search(stub, query, mode=pb.SEARCH_MODE_HYBRID, score_threshold=0.99)).hits


async def test_delete_removes_only_that_document(stub) -> None:
    await index(stub, "manual", MANUAL)
    await index(stub, "recipes", RECIPES)
    reply = await stub.DeleteDocument(pb.DeleteDocumentRequest(document_id="manual"), timeout=TIMEOUT)
    assert reply.deleted == 3
    gone = await stub.ListChunkIds(pb.ListChunkIdsRequest(document_id="manual"), timeout=TIMEOUT)
    kept = await stub.ListChunkIds(pb.ListChunkIdsRequest(document_id="recipes"), timeout=TIMEOUT)
    assert list(gone.chunk_ids) == []
    assert list(kept.chunk_ids) == [chunk_point_id("recipes", 0), chunk_point_id("recipes", 1)]
    hits = (await search(stub, "reset the router", top_k=10)).hits
    assert hits and {h.document_id for h in hits} == {"recipes"}
    again = await stub.DeleteDocument(pb.DeleteDocumentRequest(document_id="manual"), timeout=TIMEOUT)
    assert again.deleted == 0


async def test_a_keyword_query_is_found_by_sparse_and_hybrid_where_dense_misses(stub) -> None:
    await index(stub, "minutes", MINUTES)
    await index(stub, "people", PEOPLE)
    query = "who is Brannigan"
    dense = await search(stub, query, top_k=1, mode=pb.SEARCH_MODE_DENSE)
    sparse = await search(stub, query, top_k=1, mode=pb.SEARCH_MODE_SPARSE)
    hybrid = await search(stub, query, top_k=1, mode=pb.SEARCH_MODE_HYBRID)
    assert dense.hits[0].document_id == "people"  # the name means nothing to the embedding model
    assert (sparse.hits[0].document_id, sparse.hits[0].chunk_index) == ("minutes", 0)
    assert (hybrid.hits[0].document_id, hybrid.hits[0].chunk_index) == ("minutes", 0)
    assert sparse.mode == pb.SEARCH_MODE_SPARSE and hybrid.mode == pb.SEARCH_MODE_HYBRID


async def test_a_paraphrase_is_found_by_dense_and_hybrid_where_sparse_has_no_terms(stub) -> None:
    await index(stub, "pets", PETS)
    await index(stub, "manual", MANUAL)
    query = "a cat napping on a carpet"
    assert not (await search(stub, query, mode=pb.SEARCH_MODE_SPARSE)).hits  # no shared term
    for mode in (pb.SEARCH_MODE_DENSE, pb.SEARCH_MODE_HYBRID):
        top = (await search(stub, query, top_k=1, mode=mode)).hits[0]
        assert (top.document_id, top.chunk_index) == ("pets", 0)


@pytest.mark.parametrize("request_", [
    pb.SearchRequest(query=""),
    pb.SearchRequest(query="   "),
    pb.SearchRequest(query="router", top_k=101),
    pb.SearchRequest(query="router", score_threshold=float("nan")),
    pb.SearchRequest(query="router", document_ids=[""]),
    pb.SearchRequest(query="router", mode=42),  # type: ignore[arg-type]
    pb.SearchRequest(query="router", tenant="   "),
    pb.SearchRequest(query="router", tenant="t" * 257),
], ids=["empty", "blank", "top_k", "nan", "empty-doc-id", "unknown-mode", "blank-tenant", "long-tenant"])
async def test_bad_search_is_invalid_argument(stub, request_: pb.SearchRequest) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Search(request_, timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details()


@pytest.mark.parametrize("request_", [
    pb.IndexRequest(document_id="", chunks=[pb.Chunk(text="x")]),
    pb.IndexRequest(document_id="d", chunks=[]),
    pb.IndexRequest(document_id="d", chunks=[pb.Chunk(chunk_index=0, text="  ")]),
    pb.IndexRequest(document_id="d", chunks=[pb.Chunk(chunk_index=0, text="a"), pb.Chunk(chunk_index=0, text="b")]),
    pb.IndexRequest(document_id="d", chunks=[pb.Chunk(chunk_index=i, text="a") for i in range(513)]),
], ids=["no-document-id", "no-chunks", "blank-text", "duplicate-index", "too-many-chunks"])
async def test_bad_index_is_invalid_argument_and_stores_nothing(stub, request_: pb.IndexRequest) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Index(request_, timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = await stub.ListChunkIds(pb.ListChunkIdsRequest(document_id="d"), timeout=TIMEOUT)
    assert list(listed.chunk_ids) == []


async def chunk_ids(stub: pb_grpc.RetrieverServiceStub, document_id: str) -> list[str]:
    return list((await stub.ListChunkIds(pb.ListChunkIdsRequest(document_id=document_id), timeout=TIMEOUT)).chunk_ids)


async def test_index_batch_indexes_each_document_as_index_would_and_refuses_only_the_bad_one(stub) -> None:
    reply = await stub.IndexBatch(pb.IndexBatchRequest(documents=[
        index_request("manual", MANUAL),
        index_request("bad", ["fine", "  "]),  # a blank chunk: this entry alone is refused
        index_request("recipes", RECIPES, tenant="acme"),
    ]), timeout=TIMEOUT)
    assert [(r.indexed, bool(r.error)) for r in reply.results] == [(3, False), (0, True), (2, False)]
    assert "chunk 1 has no text" in reply.results[1].error
    assert await chunk_ids(stub, "bad") == []
    assert await chunk_ids(stub, "manual") == [chunk_point_id("manual", i) for i in range(3)]
    top = (await search(stub, "how do I restart my router?", top_k=1, mode=pb.SEARCH_MODE_DENSE)).hits[0]
    assert (top.document_id, top.chunk_index, top.text) == ("manual", 0, MANUAL[0])
    # Embedded together with other documents' chunks, a chunk scores as when indexed alone.
    await index(stub, "manual-alone", MANUAL[:1])
    both = (await search(stub, MANUAL[0], top_k=2, mode=pb.SEARCH_MODE_DENSE)).hits
    assert {h.document_id for h in both} == {"manual", "manual-alone"}
    assert both[0].score == pytest.approx(both[1].score, abs=1e-5)
    # Each document keeps its own tenant.
    default = (await search(stub, "bake bread", top_k=10, mode=pb.SEARCH_MODE_DENSE)).hits
    assert default and "recipes" not in {h.document_id for h in default}
    acme = (await search(stub, "bake bread", top_k=1, mode=pb.SEARCH_MODE_DENSE, tenant="acme")).hits
    assert [h.document_id for h in acme] == ["recipes"]


@pytest.mark.parametrize("request_", [
    pb.IndexBatchRequest(),
    pb.IndexBatchRequest(documents=[index_request("d", ["a"] * 300), index_request("e", ["b"] * 213)]),
], ids=["no-documents", "too-many-chunks-in-all"])
async def test_a_bad_index_batch_is_invalid_argument_and_stores_nothing(stub, request_) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.IndexBatch(request_, timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await chunk_ids(stub, "d") == []


async def test_delete_and_list_need_a_document_id(stub) -> None:
    for call in (stub.DeleteDocument(pb.DeleteDocumentRequest(), timeout=TIMEOUT),
                 stub.ListChunkIds(pb.ListChunkIdsRequest(), timeout=TIMEOUT)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_health_is_serving_after_start_and_not_serving_once_stopping(
    settings: RetrieverSettings, retriever: Retriever,
) -> None:
    server: GrpcServer = build_grpc_server(settings, retriever, metric_prefix="retriever_health_test")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE_NAME):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        await server.stop(grace=2)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_hybrid_fused_in_the_engine_finds_keyword_and_paraphrase_matches_within_the_tenant(
    settings: RetrieverSettings, embedder: SentenceTransformerEmbedder,
) -> None:
    engine = settings.model_copy(update={"retriever_hybrid_in_engine": True})
    async with AsyncExitStack() as stack:
        retriever = await open_retriever(engine, embedder, stack)
        for document, texts in (("minutes", MINUTES), ("people", PEOPLE), ("pets", PETS)):
            await retriever.index(document, f"{document}.pdf", [ChunkInput(i, 1, t) for i, t in enumerate(texts)],
                                  tenant="acme")
        await retriever.index("other-minutes", "x.pdf", [ChunkInput(0, 1, MINUTES[0])], tenant="globex")
        keyword = await retriever.search("who is Brannigan", top_k=1, mode=SearchMode.HYBRID, tenant="acme")
        assert [(h.document_id, h.chunk_index) for h in keyword.hits] == [("minutes", 0)]
        paraphrase = await retriever.search("a cat napping on a carpet", top_k=1, mode=SearchMode.HYBRID,
                                            tenant="acme")
        assert [(h.document_id, h.chunk_index) for h in paraphrase.hits] == [("pets", 0)]
        assert not (await retriever.search("who is Brannigan", mode=SearchMode.HYBRID, tenant="initech")).hits
