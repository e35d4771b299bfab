"""The store port's contract, run against both adapters: the embedded engine (Qdrant Edge, for
real) and the Qdrant-server adapter (through AsyncQdrantClient's in-process mode, which speaks
the same client API as a server; none runs here)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import qdrant_edge as edge
from qdrant_client import QdrantClient, models

from genai_common.errors import Unavailable
from retriever.domain import CHUNK_ID_NAMESPACE, ChunkRecord, CollectionIdentity, SparseVector, chunk_point_id
from retriever.local_mode import LocalModeData
from retriever.qdrant_edge import EdgeChunkStore
from retriever.qdrant_server import QdrantServerChunkStore
from retriever.store import ChunkStore, HybridQuery, IncompatibleCollection
from tests.support.procs import free_port

MINILM = CollectionIdentity("all-MiniLM-L6-v2", 4, "bm25-blake2b31-english-v1")
ADAPTERS = ["edge", "server"]
OpenStore = Callable[..., ChunkStore]


def record(document_id: str, index: int, dense: list[float], tenant: str = "default",
           terms: tuple[int, ...] = (7, 11)) -> ChunkRecord:
    return ChunkRecord(
        id=chunk_point_id(document_id, index), document_id=document_id, source_name=f"{document_id}.txt", page=0,
        chunk_index=index, text=f"chunk {index} of {document_id}", dense=dense,
        sparse=SparseVector(terms, tuple(1.0 for _ in terms)), tenant=tenant,
    )


def make_store(adapter: str, path: Path, collection: str = "chunks") -> ChunkStore:
    """A store on disk under `path` (the server adapter: qdrant-client's local mode there)."""
    if adapter == "edge":
        return EdgeChunkStore(collection=collection, path=str(path), threads=2)
    return QdrantServerChunkStore(collection=collection, path=str(path))


@pytest.fixture(params=ADAPTERS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ChunkStore]:
    opened: ChunkStore = (EdgeChunkStore(collection="chunks", path=":memory:", threads=2) if request.param == "edge"
                          else QdrantServerChunkStore(collection="chunks", location=":memory:"))
    await opened.open(MINILM)
    try:
        yield opened
    finally:
        await opened.close()


def test_chunk_ids_are_stable_uuid5_of_document_and_index() -> None:
    # Pinned: if the namespace or the name format changed, re-indexing would duplicate every chunk.
    assert chunk_point_id("doc", 3) == "7a24e540-f2fa-542b-8d52-52d464296f77"
    assert chunk_point_id("doc", 3) == str(uuid.uuid5(CHUNK_ID_NAMESPACE, "doc:3"))
    assert chunk_point_id("doc", 3) != chunk_point_id("doc", 4)


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_persisted_collection_reopens_with_its_points(tmp_path: Path, adapter: str) -> None:
    store = make_store(adapter, tmp_path)
    await store.open(MINILM)
    await store.upsert([record("a", 0, [1, 0, 0, 0]), record("a", 1, [0, 1, 0, 0])])
    await store.close()

    reopened = make_store(adapter, tmp_path)
    await reopened.open(MINILM)
    try:
        assert await reopened.chunk_ids("a") == [chunk_point_id("a", 0), chunk_point_id("a", 1)]
        hits = await reopened.search_dense([0, 1, 0, 0], limit=1)
        assert (hits[0].id, hits[0].document_id, hits[0].chunk_index, hits[0].source_name) == (
            chunk_point_id("a", 1), "a", 1, "a.txt")
        assert hits[0].score == pytest.approx(1.0)
        assert await reopened.count() == 2
    finally:
        await reopened.close()


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("other", [
    CollectionIdentity("BAAI/bge-small-en-v1.5", 4, MINILM.sparse_encoder),
    CollectionIdentity(MINILM.embedding_model, 8, MINILM.sparse_encoder),
    CollectionIdentity(MINILM.embedding_model, 4, "bm25-blake2b31-none-v1"),
], ids=["model", "dimension", "sparse-terms"])
async def test_a_collection_built_with_another_model_is_refused_with_a_clear_error(
    tmp_path: Path, other: CollectionIdentity, adapter: str,
) -> None:
    store = make_store(adapter, tmp_path)
    await store.open(MINILM)
    await store.upsert([record("a", 0, [1, 0, 0, 0])])
    await store.close()

    with pytest.raises(IncompatibleCollection) as caught:
        await make_store(adapter, tmp_path).open(other)
    message = str(caught.value)
    assert "'chunks'" in message
    assert repr(MINILM.embedding_model) in message and repr(other.embedding_model) in message
    assert f"dim {MINILM.embedding_dim}" in message and f"dim {other.embedding_dim}" in message
    assert "QDRANT_COLLECTION" in message and "re-index" in message

    # A new collection name is the documented way out, and it works next to the old one.
    fresh = make_store(adapter, tmp_path, collection="chunks_v2")
    await fresh.open(other)
    await fresh.close()


async def test_upserting_again_overwrites_and_delete_counts_only_that_documents_points(store: ChunkStore) -> None:
    await store.upsert([record("a", 0, [1, 0, 0, 0]), record("a", 1, [0, 1, 0, 0]), record("b", 0, [0, 0, 1, 0])])
    await store.upsert([record("a", 0, [1, 0, 0, 0])])  # the same deterministic id: no duplicate
    assert await store.count() == 3
    assert await store.delete_document("a") == 2
    assert await store.delete_document("a") == 0
    assert await store.count() == 1
    assert await store.chunk_ids("a") == []
    assert await store.chunk_ids("b") == [chunk_point_id("b", 0)]


async def test_chunk_ids_come_in_chunk_order_across_pages(store: ChunkStore) -> None:
    await store.upsert([record("long", i, [1, i, 0, 0]) for i in reversed(range(600))])  # > one scroll page
    assert await store.chunk_ids("long") == [chunk_point_id("long", i) for i in range(600)]


async def test_every_search_sees_only_the_callers_tenant(store: ChunkStore) -> None:
    await store.upsert([record("acme-doc", 0, [1, 0, 0, 0], tenant="acme"),
                        record("globex-doc", 0, [1, 0.1, 0, 0], tenant="globex"),
                        record("shared-doc", 0, [1, 0.2, 0, 0])])
    probe = HybridQuery(dense=[1, 0, 0, 0], sparse=SparseVector((7,), (1.0,)), candidates=10)
    for tenant, document in (("acme", "acme-doc"), ("globex", "globex-doc"), ("default", "shared-doc")):
        results = [
            await store.search_dense([1, 0, 0, 0], limit=10, tenant=tenant),
            await store.search_sparse(SparseVector((7,), (1.0,)), limit=10, tenant=tenant),
            await store.search_hybrid(probe, limit=10, tenant=tenant),
            await store.search_hybrid(dataclasses.replace(probe, fusion="rrf"), limit=10, tenant=tenant),
        ]
        assert [[h.document_id for h in hits] for hits in results] == [[document]] * 4, tenant
        assert set(await store.dense_scores([1, 0, 0, 0], [chunk_point_id(d, 0) for d in
                                                           ("acme-doc", "globex-doc", "shared-doc")],
                                            tenant=tenant)) == {chunk_point_id(document, 0)}
    assert await store.search_dense([1, 0, 0, 0], limit=10, tenant="initech") == []


async def test_document_filter_and_score_threshold(store: ChunkStore) -> None:
    await store.upsert([record("a", 0, [1, 0, 0, 0]), record("a", 1, [1, 1, 0, 0]), record("b", 0, [0.9, 0.1, 0, 0])])
    only_a = await store.search_dense([1, 0, 0, 0], limit=10, document_ids=["a"])
    assert [h.id for h in only_a] == [chunk_point_id("a", 0), chunk_point_id("a", 1)]
    near = await store.search_dense([1, 0, 0, 0], limit=10, score_threshold=0.9)
    assert [h.id for h in near] == [chunk_point_id("a", 0), chunk_point_id("b", 0)]
    hybrid = HybridQuery(dense=[1, 0, 0, 0], sparse=SparseVector((7,), (1.0,)), candidates=10)
    assert {h.document_id for h in await store.search_hybrid(hybrid, limit=10, document_ids=["b"])} == {"b"}
    sparse = await store.search_sparse(SparseVector((11,), (1.0,)), limit=10, document_ids=["b"])
    assert [h.id for h in sparse] == [chunk_point_id("b", 0)]
    assert await store.search_sparse(SparseVector((), ()), limit=10) == []


async def test_dense_scores_gives_the_cosine_of_named_chunks_only(store: ChunkStore) -> None:
    await store.upsert([record("a", 0, [1, 0, 0, 0]), record("a", 1, [0, 1, 0, 0])])
    scores = await store.dense_scores([1, 1, 0, 0], [chunk_point_id("a", 1), chunk_point_id("gone", 0)])
    assert scores == {chunk_point_id("a", 1): pytest.approx(2 ** -0.5)}


async def test_a_closed_store_refuses_calls(store: ChunkStore) -> None:
    await store.close()
    with pytest.raises(RuntimeError):
        await store.count()


def _write_legacy_point(adapter: str, path: Path) -> None:
    """A chunk as the retriever stored it before tenants existed: no "tenant" in its payload."""
    fields = {"document_id": "old", "source_name": "old.txt", "page": 0, "chunk_index": 0, "text": "old"}
    if adapter == "edge":
        shard = edge.EdgeShard.load(str(path / "edge" / "chunks" / "shard"))
        shard.update(edge.UpdateOperation.upsert_points([edge.Point(
            id=chunk_point_id("old", 0), payload=fields,
            vector={"dense": [1.0, 0, 0, 0], "sparse": edge.SparseVector([7], [1.0])})]))
        shard.close()
        return
    client = QdrantClient(path=str(path))
    client.upsert("chunks", [models.PointStruct(
        id=chunk_point_id("old", 0), payload=fields,
        vector={"dense": [1.0, 0, 0, 0], "sparse": models.SparseVector(indices=[7], values=[1.0])})])
    client.close()


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_chunks_stored_before_tenants_existed_belong_to_the_default_tenant(tmp_path: Path, adapter: str) -> None:
    store = make_store(adapter, tmp_path)
    await store.open(MINILM)
    await store.upsert([record("new", 0, [0, 1, 0, 0], tenant="acme")])
    await store.close()
    _write_legacy_point(adapter, tmp_path)

    store = make_store(adapter, tmp_path)
    await store.open(MINILM)
    try:
        for tenant, document in (("default", "old"), ("acme", "new")):
            dense = await store.search_dense([1, 1, 0, 0], limit=10, tenant=tenant)
            sparse = await store.search_sparse(SparseVector((7,), (1.0,)), limit=10, tenant=tenant)
            assert [h.document_id for h in dense] == [h.document_id for h in sparse] == [document]
        assert await store.search_dense([1, 0, 0, 0], limit=10, tenant="globex") == []
    finally:
        await store.close()


async def test_old_local_mode_data_stops_the_embedded_engine_with_how_to_reindex(tmp_path: Path) -> None:
    old = QdrantServerChunkStore(collection="chunks", path=str(tmp_path))  # how local mode laid it out
    await old.open(MINILM)
    await old.upsert([record("a", 0, [1, 0, 0, 0])])
    await old.close()

    with pytest.raises(LocalModeData) as caught:
        await EdgeChunkStore(collection="chunks", path=str(tmp_path)).open(MINILM)
    message = str(caught.value)
    assert str(tmp_path / "collection" / "chunks") in message
    assert "re-index" in message and "upload the documents again" in message
    assert not (tmp_path / "edge").exists()  # nothing created: no silent empty index
    # Another collection name on the same path is not the old data: it opens.
    other = EdgeChunkStore(collection="other", path=str(tmp_path))
    await other.open(MINILM)
    await other.close()
    assert json.loads((tmp_path / "edge" / "other" / "identity.json").read_text())["embedding_dim"] == 4


@pytest.mark.filterwarnings("ignore:Failed to obtain server version")
async def test_an_unreachable_qdrant_server_is_reported_as_unavailable() -> None:
    store = QdrantServerChunkStore(collection="chunks", url=f"http://127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(Unavailable) as caught:
        await store.open(MINILM)
    assert "vector store unavailable" in caught.value.message


async def test_the_embedded_engine_indexes_a_copy_in_the_background_and_keeps_writes_made_meanwhile(
    tmp_path: Path,
) -> None:
    store = EdgeChunkStore(collection="chunks", path=str(tmp_path), threads=2, optimize_after=300)
    await store.open(MINILM)
    try:
        await store.upsert([record(f"d{i // 10}", i % 10, [1, i, 0, 0]) for i in range(300)])  # starts a run
        await store.upsert([record("late", 0, [0, 0, 1, 0])])  # while the copy is being optimised
        assert await store.delete_document("d0") == 10
        assert (await store.search_dense([0, 0, 1, 0], limit=1))[0].document_id == "late"  # searchable meanwhile
        await store.upsert([record(f"e{i // 10}", i % 10, [0, 0, 0, 1]) for i in range(300)])  # the next run's
        await store.settle()
        assert await store.count() == 591
        assert (await store.search_dense([0, 0, 1, 0], limit=1))[0].document_id == "late"
        assert await store.chunk_ids("d0") == []
        assert await store.chunk_ids("d29") == [chunk_point_id("d29", i) for i in range(10)]
    finally:
        await store.close()
    shards = sorted(p.name for p in (tmp_path / "edge" / "chunks").glob("shard*"))
    assert shards == [(tmp_path / "edge" / "chunks" / "current").read_text()]  # the swapped-in copy only
    assert not (await _unindexed_after_reopen(tmp_path))  # the points of the second batch were indexed too
    reopened = EdgeChunkStore(collection="chunks", path=str(tmp_path))
    await reopened.open(MINILM)
    try:
        assert await reopened.count() == 591
    finally:
        await reopened.close()


async def _unindexed_after_reopen(path: Path) -> int:
    """Dense vectors of the shard at `path` outside an index (0 once every optimisation ran)."""
    shard_dir = path / "edge" / "chunks" / (path / "edge" / "chunks" / "current").read_text()
    shard = edge.EdgeShard.load(str(shard_dir))
    try:
        info = shard.info()
        return 2 * info.points_count - info.indexed_vectors_count
    finally:
        shard.close()
