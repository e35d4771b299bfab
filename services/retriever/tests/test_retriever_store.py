"""The Qdrant adapter on its own: the collection's model record, persistence, and refusing a mismatch."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from genai_common.errors import Unavailable
from retriever.domain import CHUNK_ID_NAMESPACE, ChunkRecord, CollectionIdentity, SparseVector, chunk_point_id
from retriever.store import IncompatibleCollection, QdrantChunkStore
from tests.support.procs import free_port

MINILM = CollectionIdentity("all-MiniLM-L6-v2", 4, "bm25-blake2b31-english-v1")


def record(document_id: str, index: int, dense: list[float]) -> ChunkRecord:
    return ChunkRecord(
        id=chunk_point_id(document_id, index), document_id=document_id, source_name=f"{document_id}.txt", page=0,
        chunk_index=index, text=f"chunk {index} of {document_id}", dense=dense,
        sparse=SparseVector((7, 11), (1.0, 0.5)),
    )


def test_chunk_ids_are_stable_uuid5_of_document_and_index() -> None:
    # Pinned: if the namespace or the name format changed, re-indexing would duplicate every chunk.
    assert chunk_point_id("doc", 3) == "7a24e540-f2fa-542b-8d52-52d464296f77"
    assert chunk_point_id("doc", 3) == str(uuid.uuid5(CHUNK_ID_NAMESPACE, "doc:3"))
    assert chunk_point_id("doc", 3) != chunk_point_id("doc", 4)


async def test_a_persisted_collection_reopens_with_its_points(tmp_path: Path) -> None:
    store = QdrantChunkStore(collection="chunks", path=str(tmp_path))
    await store.open(MINILM)
    await store.upsert([record("a", 0, [1, 0, 0, 0]), record("a", 1, [0, 1, 0, 0])])
    await store.close()

    reopened = QdrantChunkStore(collection="chunks", path=str(tmp_path))
    await reopened.open(MINILM)
    try:
        assert await reopened.chunk_ids("a") == [chunk_point_id("a", 0), chunk_point_id("a", 1)]
        hits = await reopened.search_dense([0, 1, 0, 0], limit=1)
        assert (hits[0].document_id, hits[0].chunk_index, hits[0].source_name) == ("a", 1, "a.txt")
        assert hits[0].score == pytest.approx(1.0)
    finally:
        await reopened.close()


@pytest.mark.parametrize("other", [
    CollectionIdentity("BAAI/bge-small-en-v1.5", 4, MINILM.sparse_encoder),
    CollectionIdentity(MINILM.embedding_model, 8, MINILM.sparse_encoder),
    CollectionIdentity(MINILM.embedding_model, 4, "bm25-blake2b31-none-v1"),
], ids=["model", "dimension", "sparse-terms"])
async def test_a_collection_built_with_another_model_is_refused_with_a_clear_error(
    tmp_path: Path, other: CollectionIdentity,
) -> None:
    store = QdrantChunkStore(collection="chunks", path=str(tmp_path))
    await store.open(MINILM)
    await store.upsert([record("a", 0, [1, 0, 0, 0])])
    await store.close()

    with pytest.raises(IncompatibleCollection) as caught:
        await QdrantChunkStore(collection="chunks", path=str(tmp_path)).open(other)
    message = str(caught.value)
    assert "'chunks'" in message
    assert repr(MINILM.embedding_model) in message and repr(other.embedding_model) in message
    assert f"dim {MINILM.embedding_dim}" in message and f"dim {other.embedding_dim}" in message
    assert "QDRANT_COLLECTION" in message and "re-index" in message

    # A new collection name is the documented way out, and it works next to the old one.
    fresh = QdrantChunkStore(collection="chunks_v2", path=str(tmp_path))
    await fresh.open(other)
    await fresh.close()


async def test_delete_counts_only_that_documents_points() -> None:
    store = QdrantChunkStore(collection="chunks", path=":memory:")
    await store.open(MINILM)
    try:
        await store.upsert([record("a", 0, [1, 0, 0, 0]), record("a", 1, [0, 1, 0, 0]), record("b", 0, [0, 0, 1, 0])])
        assert await store.delete_document("a") == 2
        assert await store.delete_document("a") == 0
        assert await store.count() == 1
        assert await store.chunk_ids("b") == [chunk_point_id("b", 0)]
    finally:
        await store.close()


async def test_dense_scores_gives_the_cosine_of_named_chunks_only() -> None:
    store = QdrantChunkStore(collection="chunks", path=":memory:")
    await store.open(MINILM)
    try:
        await store.upsert([record("a", 0, [1, 0, 0, 0]), record("a", 1, [0, 1, 0, 0])])
        scores = await store.dense_scores([1, 1, 0, 0], [chunk_point_id("a", 1)])
        assert scores == {chunk_point_id("a", 1): pytest.approx(2 ** -0.5)}
    finally:
        await store.close()


async def test_a_closed_store_refuses_calls() -> None:
    store = QdrantChunkStore(collection="chunks", path=":memory:")
    await store.open(MINILM)
    await store.close()
    with pytest.raises(RuntimeError):
        await store.count()


@pytest.mark.filterwarnings("ignore:Failed to obtain server version")
async def test_an_unreachable_qdrant_server_is_reported_as_unavailable() -> None:
    store = QdrantChunkStore(collection="chunks", url=f"http://127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(Unavailable) as caught:
        await store.open(MINILM)
    assert "vector store unavailable" in caught.value.message
