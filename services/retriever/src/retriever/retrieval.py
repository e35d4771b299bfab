"""The retrieval use cases: index chunks, search them (dense, sparse or hybrid), delete and list them."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from genai_common.errors import InvalidInput
from retriever.domain import (
    DEFAULT_TENANT,
    ChunkInput,
    ChunkRecord,
    DocumentChunks,
    ScoredChunk,
    SearchMode,
    SparseVector,
    chunk_point_id,
)
from retriever.fusion import distribution_score_fusion, reciprocal_rank_fusion
from retriever.metrics import RetrieverMetrics
from retriever.store import ChunkStore, HybridQuery


class Embedder(Protocol):
    @property
    def model_name(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    async def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class SparseEncoder(Protocol):
    @property
    def name(self) -> str: ...
    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]: ...
    def encode_query(self, text: str) -> SparseVector: ...


@dataclass(frozen=True, slots=True)
class RetrieverConfig:
    default_mode: SearchMode = SearchMode.HYBRID
    default_top_k: int = 5
    max_top_k: int = 100
    max_chunks_per_request: int = 512
    max_chunk_chars: int = 20_000
    max_query_chars: int = 4_000
    max_document_ids: int = 1_000
    max_id_chars: int = 256
    # Hybrid: fuse the top `hybrid_candidates` of the dense and of the sparse ranking, by score
    # distribution ("dbsf", measured best on SciFact train) or by reciprocal rank ("rrf", uses rrf_k).
    hybrid_fusion: str = "dbsf"
    dense_weight: float = 1.0
    sparse_weight: float = 1.0
    rrf_k: float = 60.0
    hybrid_candidates: int = 100
    # Fuse in the vector store, in one query (prefetch + fusion), instead of two queries fused here
    # (the same nDCG@10 on SciFact with dbsf: bench/retrieval_modes.py).
    hybrid_in_engine: bool = True

    def __post_init__(self) -> None:
        if self.hybrid_fusion not in ("dbsf", "rrf"):
            raise ValueError(f"hybrid_fusion must be 'dbsf' or 'rrf', not {self.hybrid_fusion!r}")


_NO_TERMS = SparseVector((), ())


@dataclass(frozen=True, slots=True)
class SearchResult:
    mode: SearchMode
    hits: list[ScoredChunk]


class Retriever:
    """Indexes and searches chunks. `score_threshold` means, per mode:

    dense: minimum cosine similarity; sparse: minimum BM25 score; hybrid: minimum *dense cosine*
    of each fused hit (so one threshold reads the same in dense and hybrid mode), while the hits'
    `score` is the fused score (dbsf: 0..dense_weight+sparse_weight; rrf: sum of weight/(k+rank)).
    """

    def __init__(
        self, *, embedder: Embedder, sparse: SparseEncoder, store: ChunkStore, config: RetrieverConfig,
        metrics: RetrieverMetrics | None = None,
    ) -> None:
        self._embedder = embedder
        self._sparse = sparse
        self._store = store
        self._config = config
        self._metrics = metrics

    @property
    def config(self) -> RetrieverConfig:
        return self._config

    async def index(
        self, document_id: str, source_name: str, chunks: Sequence[ChunkInput], *, tenant: str = "",
    ) -> int:
        """Embed and upsert `chunks` as `tenant`'s ("" = the default tenant); re-indexing a chunk
        overwrites its point (ids are deterministic).

        Chunks of the document that are not in `chunks` are left alone: a large document may arrive
        in several requests. DeleteDocument first to replace a document wholesale.
        """
        records = self._records(DocumentChunks(document_id, source_name, chunks, tenant))
        await self._write(records)
        return len(records)

    async def index_batch(self, documents: Sequence[DocumentChunks]) -> list[int | InvalidInput]:
        """`index` for several documents at once: one encode over all their chunks, one upsert.

        Each entry is checked on its own; a refused one comes back as its `InvalidInput` (in its
        place) and the others are indexed. More than `max_chunks_per_request` chunks in all is
        refused whole, as is an empty call. A store or model failure fails the call: nothing of it
        is acknowledged, and the whole call may be retried (point ids are deterministic).
        """
        cfg = self._config
        if not documents:
            raise InvalidInput("at least one document is required")
        total = sum(len(d.chunks) for d in documents)
        if total > cfg.max_chunks_per_request:
            raise InvalidInput(f"{total} chunks in one request; at most {cfg.max_chunks_per_request}, "
                               "send more requests")
        outcomes: list[int | InvalidInput] = []
        records: list[ChunkRecord] = []
        for document in documents:
            try:
                accepted = self._records(document)
            except InvalidInput as refused:
                outcomes.append(refused)
                continue
            outcomes.append(len(accepted))
            records += accepted
        if records:
            await self._write(records)
        return outcomes

    def _records(self, document: DocumentChunks) -> list[ChunkRecord]:
        """The points of `document`'s chunks, vectors still empty; `InvalidInput` if it is refused."""
        self._check_id(document.document_id, "document_id")
        tenant = self._tenant(document.tenant)
        self._check_chunks(document.chunks)
        return [
            ChunkRecord(id=chunk_point_id(document.document_id, c.chunk_index), document_id=document.document_id,
                        source_name=document.source_name, page=c.page, chunk_index=c.chunk_index, text=c.text,
                        dense=(), sparse=_NO_TERMS, tenant=tenant)
            for c in document.chunks
        ]

    async def _write(self, records: list[ChunkRecord]) -> None:
        """Embed the records' texts, attach the vectors and upsert them in one write."""
        texts = [r.text for r in records]
        dense = await self._embedder.embed(texts)
        sparse = await asyncio.to_thread(self._sparse.encode_documents, texts)
        complete = [dataclasses.replace(r, dense=d, sparse=s) for r, d, s in zip(records, dense, sparse, strict=True)]
        await self._store.upsert(complete)
        if self._metrics is not None:
            self._metrics.indexed_chunks.inc(len(complete))

    async def search(
        self, query: str, *, top_k: int = 0, score_threshold: float | None = None,
        document_ids: Sequence[str] = (), mode: SearchMode | None = None, tenant: str = "",
    ) -> SearchResult:
        """Only `tenant`'s chunks are searched ("" = the default tenant, which also owns chunks
        stored before tenants existed)."""
        top_k = self._check_search(query, top_k, score_threshold, document_ids)
        tenant = self._tenant(tenant)
        mode = mode or self._config.default_mode
        started = time.perf_counter()
        try:
            if mode is SearchMode.DENSE:
                vector = await self._embed_query(query)
                hits = await self._store.search_dense(
                    vector, limit=top_k, tenant=tenant, document_ids=document_ids, score_threshold=score_threshold)
            elif mode is SearchMode.SPARSE:
                hits = await self._store.search_sparse(
                    self._sparse.encode_query(query), limit=top_k, tenant=tenant, document_ids=document_ids,
                    score_threshold=score_threshold)
            else:
                hits = await self._hybrid(query, top_k, score_threshold, tenant, document_ids)
        finally:
            if self._metrics is not None:
                self._metrics.search_seconds.labels(mode.value).observe(time.perf_counter() - started)
        return SearchResult(mode, hits)

    async def _hybrid(
        self, query: str, top_k: int, score_threshold: float | None, tenant: str, document_ids: Sequence[str],
    ) -> list[ScoredChunk]:
        vector = await self._embed_query(query)
        limit = max(self._config.hybrid_candidates, top_k)
        if self._fuse_in_engine(score_threshold):
            return await self._store.search_hybrid(
                self._hybrid_query(vector, self._sparse.encode_query(query), limit), limit=top_k, tenant=tenant,
                document_ids=document_ids)
        dense, sparse = await asyncio.gather(
            self._store.search_dense(vector, limit=limit, tenant=tenant, document_ids=document_ids),
            self._store.search_sparse(self._sparse.encode_query(query), limit=limit, tenant=tenant,
                                      document_ids=document_ids),
        )
        by_id = {hit.id: hit for hit in (*sparse, *dense)}
        fused = self.fuse(dense, sparse)
        if score_threshold is not None:
            cosine = {h.id: h.score for h in dense}
            unscored = [chunk_id for chunk_id, _ in fused if chunk_id not in cosine]
            cosine.update(await self._store.dense_scores(vector, unscored, tenant=tenant))
            fused = [(chunk_id, s) for chunk_id, s in fused if cosine.get(chunk_id, -math.inf) >= score_threshold]
        return [dataclasses.replace(by_id[chunk_id], score=s) for chunk_id, s in fused[:top_k]]

    def _fuse_in_engine(self, score_threshold: float | None) -> bool:
        """One engine query (prefetch + fusion) unless a threshold needs each hit's dense cosine, or
        weights are set for DBSF (the engine's DBSF is unweighted)."""
        cfg = self._config
        equal_weights = cfg.dense_weight == cfg.sparse_weight
        return cfg.hybrid_in_engine and score_threshold is None and (cfg.hybrid_fusion == "rrf" or equal_weights)

    def _hybrid_query(self, vector: Sequence[float], sparse: SparseVector, candidates: int) -> HybridQuery:
        cfg = self._config
        fusion: Literal["dbsf", "rrf"] = "rrf" if cfg.hybrid_fusion == "rrf" else "dbsf"
        return HybridQuery(dense=vector, sparse=sparse, candidates=candidates, fusion=fusion,
                           rrf_k=round(cfg.rrf_k), weights=(cfg.dense_weight, cfg.sparse_weight))

    def fuse(self, dense: Sequence[ScoredChunk], sparse: Sequence[ScoredChunk]) -> list[tuple[str, float]]:
        """(chunk id, fused score), best first, from the dense and sparse hits of one query."""
        weights = [self._config.dense_weight, self._config.sparse_weight]
        if self._config.hybrid_fusion == "rrf":
            return reciprocal_rank_fusion([[h.id for h in dense], [h.id for h in sparse]],
                                          k=self._config.rrf_k, weights=weights)
        return distribution_score_fusion([[(h.id, h.score) for h in dense], [(h.id, h.score) for h in sparse]],
                                         weights=weights)

    async def delete_document(self, document_id: str) -> int:
        self._check_id(document_id, "document_id")
        return await self._store.delete_document(document_id)

    async def chunk_ids(self, document_id: str) -> list[str]:
        self._check_id(document_id, "document_id")
        return await self._store.chunk_ids(document_id)

    async def size(self) -> int:
        """Points (chunks) in the collection."""
        return await self._store.count()

    async def _embed_query(self, query: str) -> list[float]:
        return (await self._embedder.embed([query]))[0].tolist()

    def _tenant(self, tenant: str) -> str:
        if not tenant:
            return DEFAULT_TENANT
        self._check_id(tenant, "tenant")
        return tenant

    def _check_id(self, value: str, field: str) -> None:
        if not value or not value.strip():
            raise InvalidInput(f"{field} is required")
        if len(value) > self._config.max_id_chars:
            raise InvalidInput(f"{field} is longer than {self._config.max_id_chars} characters")

    def _check_chunks(self, chunks: Sequence[ChunkInput]) -> None:
        cfg = self._config
        if not chunks:
            raise InvalidInput("at least one chunk is required")
        if len(chunks) > cfg.max_chunks_per_request:
            raise InvalidInput(
                f"{len(chunks)} chunks in one request; at most {cfg.max_chunks_per_request}, send more requests")
        if len({c.chunk_index for c in chunks}) != len(chunks):
            raise InvalidInput("chunk_index values must be unique within a document")
        for c in chunks:
            if not c.text.strip():
                raise InvalidInput(f"chunk {c.chunk_index} has no text")
            if len(c.text) > cfg.max_chunk_chars:
                raise InvalidInput(f"chunk {c.chunk_index} is longer than {cfg.max_chunk_chars} characters")
            if c.chunk_index < 0 or c.page < 0:
                raise InvalidInput(f"chunk {c.chunk_index}: chunk_index and page must be >= 0")

    def _check_search(self, query: str, top_k: int, threshold: float | None, document_ids: Sequence[str]) -> int:
        cfg = self._config
        if not query.strip():
            raise InvalidInput("query is required")
        if len(query) > cfg.max_query_chars:
            raise InvalidInput(f"query is longer than {cfg.max_query_chars} characters")
        if top_k < 0 or top_k > cfg.max_top_k:
            raise InvalidInput(f"top_k must be between 1 and {cfg.max_top_k} (0 = default {cfg.default_top_k})")
        if threshold is not None and not math.isfinite(threshold):
            raise InvalidInput("score_threshold must be a finite number")
        if len(document_ids) > cfg.max_document_ids:
            raise InvalidInput(f"at most {cfg.max_document_ids} document_ids per search")
        for document_id in document_ids:
            self._check_id(document_id, "document_ids entry")
        return top_k or cfg.default_top_k
