"""The vector store port: what the retriever needs from a store of chunks, and what every adapter shares.

Two adapters implement it with the same behaviour (the same contract tests run against both):
`qdrant_edge.EdgeChunkStore`, the Qdrant engine embedded in this process (one machine), and
`qdrant_server.QdrantServerChunkStore`, a Qdrant server through `AsyncQdrantClient` (the cluster).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from retriever.domain import DEFAULT_TENANT, ChunkRecord, CollectionIdentity, ScoredChunk, SparseVector

# Vector names and the payload of every point.
DENSE = "dense"
SPARSE = "sparse"
TENANT_FIELD = "tenant"
DOCUMENT_FIELD = "document_id"
UPSERT_BATCH = 256
SCROLL_PAGE = 256


class IncompatibleCollection(RuntimeError):
    """The collection holds vectors made by another model or term scheme than the configured one."""


def identity_record(identity: CollectionIdentity) -> dict[str, Any]:
    """The identity as stored with the collection."""
    return {"embedding_model": identity.embedding_model, "embedding_dim": identity.embedding_dim,
            "sparse_encoder": identity.sparse_encoder}


def check_identity(collection: str, stored: Mapping[str, Any], wanted: CollectionIdentity) -> None:
    """Refuse a collection whose stored identity differs from `wanted`."""
    if any(stored.get(key) != value for key, value in identity_record(wanted).items()):
        raise IncompatibleCollection(mismatch_message(collection, stored, wanted))


def mismatch_message(collection: str, stored: Mapping[str, Any], wanted: CollectionIdentity) -> str:
    return (
        f"Qdrant collection {collection!r} was built with embedding model {stored.get('embedding_model')!r} "
        f"(dim {stored.get('embedding_dim')}, sparse {stored.get('sparse_encoder')!r}), but this retriever is "
        f"configured with {wanted.embedding_model!r} (dim {wanted.embedding_dim}, sparse {wanted.sparse_encoder!r}); "
        "their vectors are not comparable. Either set QDRANT_COLLECTION to a new collection name and re-index "
        f"the documents into it, or set EMBEDDING_MODEL back to {stored.get('embedding_model')!r}."
    )


def payload(record: ChunkRecord) -> dict[str, Any]:
    return {
        DOCUMENT_FIELD: record.document_id, "source_name": record.source_name, "page": record.page,
        "chunk_index": record.chunk_index, "text": record.text, TENANT_FIELD: record.tenant,
    }


def scored(point_id: object, point_payload: Mapping[str, Any] | None, score: float) -> ScoredChunk:
    found = point_payload or {}
    return ScoredChunk(
        id=str(point_id), document_id=found.get(DOCUMENT_FIELD, ""), source_name=found.get("source_name", ""),
        page=int(found.get("page", 0)), chunk_index=int(found.get("chunk_index", 0)),
        text=found.get("text", ""), score=float(score),
    )


@dataclass(frozen=True, slots=True)
class HybridQuery:
    """Dense and sparse candidates fused by the engine in one query.

    fusion: "dbsf" (score distributions) or "rrf" (reciprocal ranks with `rrf_k` and `weights`,
    one for dense and one for sparse).
    """

    dense: Sequence[float]
    sparse: SparseVector
    candidates: int
    fusion: Literal["dbsf", "rrf"] = "dbsf"
    rrf_k: int = 60
    weights: tuple[float, float] = (1.0, 1.0)


class ChunkStore(Protocol):
    """Chunks with a dense and a sparse vector each; every search sees one tenant's chunks only
    (the default tenant also owns chunks stored without one)."""

    async def open(self, identity: CollectionIdentity) -> None: ...
    async def close(self) -> None: ...
    async def upsert(self, records: Sequence[ChunkRecord]) -> None: ...
    async def search_dense(self, vector: Sequence[float], *, limit: int, tenant: str = DEFAULT_TENANT,
                           document_ids: Sequence[str] = (),
                           score_threshold: float | None = None) -> list[ScoredChunk]: ...
    async def search_sparse(self, vector: SparseVector, *, limit: int, tenant: str = DEFAULT_TENANT,
                            document_ids: Sequence[str] = (),
                            score_threshold: float | None = None) -> list[ScoredChunk]: ...
    async def search_hybrid(self, query: HybridQuery, *, limit: int, tenant: str = DEFAULT_TENANT,
                            document_ids: Sequence[str] = ()) -> list[ScoredChunk]: ...
    async def dense_scores(self, vector: Sequence[float], ids: Sequence[str], *,
                           tenant: str = DEFAULT_TENANT) -> dict[str, float]: ...
    async def delete_document(self, document_id: str) -> int: ...
    async def chunk_ids(self, document_id: str) -> list[str]: ...
    async def count(self) -> int: ...
