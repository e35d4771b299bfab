"""BM25 sparse vectors (and Qdrant's IDF on them) and the fusion of dense and sparse results."""

from __future__ import annotations

import math

import pytest

from retriever.domain import ChunkRecord, CollectionIdentity, chunk_point_id
from retriever.fusion import distribution_score_fusion, reciprocal_rank_fusion
from retriever.qdrant_edge import EdgeChunkStore
from retriever.qdrant_server import QdrantServerChunkStore
from retriever.sparse import Bm25Encoder, term_id
from retriever.store import ChunkStore


def test_terms_are_lowercased_stopword_free_and_stemmed() -> None:
    encoder = Bm25Encoder(stemmer="english")
    assert encoder.terms("The Running of the CELLS, and their studies!") == ["run", "cell", "studi"]
    assert Bm25Encoder(stemmer="none").terms("The Running cells") == ["running", "cells"]


def test_term_ids_are_stable_31_bit_hashes() -> None:
    assert term_id("cell") == term_id("cell") != term_id("cells")
    assert term_id("cell") == 2_037_143_895  # pinned: stored vectors depend on it
    assert all(0 <= term_id(w) < 2**31 for w in ("a", "cell", "x" * 1000, "ünïcode"))


def test_document_weights_follow_bm25_saturation_and_length_normalisation() -> None:
    encoder = Bm25Encoder(k1=1.2, b=0.75, avg_len=4, stemmer="none")
    vector = encoder.encode_document("cell cell cell virus")  # length 4 = avg_len: norm = k1
    weights = dict(zip(vector.indices, vector.values, strict=True))
    assert weights[term_id("cell")] == pytest.approx(3 * 2.2 / (3 + 1.2))
    assert weights[term_id("virus")] == pytest.approx(1.0)
    assert list(vector.indices) == sorted(vector.indices)
    longer = encoder.encode_document("virus " + "cell " * 11)
    longer_weights = dict(zip(longer.indices, longer.values, strict=True))
    assert longer_weights[term_id("virus")] < weights[term_id("virus")]  # same tf, longer chunk: weighs less


def test_query_vectors_weigh_each_distinct_term_once() -> None:
    vector = Bm25Encoder(stemmer="none").encode_query("virus virus the cell")
    assert dict(zip(vector.indices, vector.values, strict=True)) == {term_id("virus"): 1.0, term_id("cell"): 1.0}
    assert Bm25Encoder().encode_query("the and of").indices == ()


@pytest.mark.parametrize("adapter", ["edge", "server"])
async def test_qdrant_scores_sparse_vectors_as_bm25_with_idf(adapter: str) -> None:
    encoder = Bm25Encoder(k1=1.2, b=0.75, avg_len=3, stemmer="none")
    texts = {"d1": "virus replication cell", "d2": "cell membrane protein", "d3": "protein folding energy"}
    store: ChunkStore = (EdgeChunkStore(collection="bm25", path=":memory:") if adapter == "edge"
                         else QdrantServerChunkStore(collection="bm25", location=":memory:"))
    await store.open(CollectionIdentity("m", 2, encoder.name))
    try:
        await store.upsert([
            ChunkRecord(chunk_point_id(d, 0), d, d, 0, 0, t, [1.0, 0.0], encoder.encode_document(t))
            for d, t in texts.items()
        ])
        hits = await store.search_sparse(encoder.encode_query("virus cell"), limit=3)
    finally:
        await store.close()
    idf = {df: math.log((3 - df + 0.5) / (df + 0.5) + 1) for df in (1, 2)}
    # d1: virus (df 1) + cell (df 2), each tf 1 in a chunk of avg length -> weight 1.0.
    assert [h.document_id for h in hits] == ["d1", "d2"]
    assert hits[0].score == pytest.approx(idf[1] + idf[2], rel=1e-5)
    assert hits[1].score == pytest.approx(idf[2], rel=1e-5)


def test_reciprocal_rank_fusion_adds_weighted_reciprocal_ranks() -> None:
    fused = dict(reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=10, weights=[1.0, 2.0]))
    assert fused == pytest.approx({"a": 1 / 11, "b": 1 / 12 + 2 / 11, "c": 2 / 12})
    assert [item for item, _ in reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=10)] == ["b", "a", "c"]


def test_distribution_fusion_normalises_each_list_before_weighting() -> None:
    dense = [("a", 0.9), ("b", 0.5), ("c", 0.1)]  # mean 0.5, sd 0.4
    sparse = [("c", 30.0), ("b", 20.0), ("a", 10.0)]  # mean 20, sd 10
    fused = dict(distribution_score_fusion([dense, sparse]))
    assert fused["a"] == pytest.approx((0.9 - (0.5 - 1.2)) / 2.4 + (10 - (20 - 30)) / 60)
    assert fused["b"] == pytest.approx(1.0)  # the mean of each list maps to 0.5
    # A list with a huge score scale does not drown the other: weights decide.
    favour_dense = distribution_score_fusion([dense, sparse], weights=[3.0, 1.0])
    assert favour_dense[0][0] == "a"
    assert distribution_score_fusion([[("x", 7.0)], []]) == [("x", 0.5)]
