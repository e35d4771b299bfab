"""The retriever's domain types: chunks in, scored chunks out, and the ids that tie them together."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

# Fixed forever: point ids derive from it, so re-indexing a document overwrites its own points.
CHUNK_ID_NAMESPACE = uuid.UUID("6f1d3c52-8a0e-5b7e-9c41-2d7a9e0b4f13")

# The tenant of a request that names none, and of every chunk stored before tenants existed.
DEFAULT_TENANT = "default"


def chunk_point_id(document_id: str, chunk_index: int) -> str:
    """The deterministic point id of one chunk: uuid5(namespace, "<document_id>:<chunk_index>")."""
    return str(uuid.uuid5(CHUNK_ID_NAMESPACE, f"{document_id}:{chunk_index}"))


class SearchMode(StrEnum):
    """How a query is matched.

    dense: cosine similarity of MiniLM-style embeddings; `score` is the cosine (-1..1).
    sparse: BM25 over terms (stopwords out, stemmed); `score` is the BM25 score (0.. unbounded).
    hybrid: fusion of the dense and sparse results; `score` is the fused score (only comparable
        within one response).
    """

    DENSE = "dense"
    SPARSE = "sparse"
    HYBRID = "hybrid"


@dataclass(frozen=True, slots=True)
class ChunkInput:
    chunk_index: int
    page: int
    text: str


@dataclass(frozen=True, slots=True)
class DocumentChunks:
    """One document's part of an IndexBatch call: what a single Index call carries."""

    document_id: str
    source_name: str
    chunks: Sequence[ChunkInput]
    tenant: str = ""


@dataclass(frozen=True, slots=True)
class SparseVector:
    """Term ids (sorted, unique) and their weights."""

    indices: tuple[int, ...]
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """One chunk as stored: its id, payload, dense embedding and sparse term weights."""

    id: str
    document_id: str
    source_name: str
    page: int
    chunk_index: int
    text: str
    dense: Sequence[float]
    sparse: SparseVector
    tenant: str = DEFAULT_TENANT


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    id: str
    document_id: str
    source_name: str
    page: int
    chunk_index: int
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class CollectionIdentity:
    """What the vectors in a collection were made with; a mismatch makes them incomparable."""

    embedding_model: str
    embedding_dim: int
    sparse_encoder: str
