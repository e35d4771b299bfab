"""The store adapter for a Qdrant server: one collection of chunks through `AsyncQdrantClient`.

`location=":memory:"` (or `path=`, on disk) runs the same client API in process (qdrant-client's
local mode, a brute-force scan): the contract tests use it, since no Qdrant server runs on our
machines; the service uses it only with `url`. Every client call runs on a
private loop thread (see `loop_thread`) and under a deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from genai_common.errors import DeadlineExceeded, Unavailable
from retriever.domain import DEFAULT_TENANT, ChunkRecord, CollectionIdentity, ScoredChunk, SparseVector
from retriever.loop_thread import LoopThread
from retriever.store import (
    DENSE,
    DOCUMENT_FIELD,
    SCROLL_PAGE,
    SPARSE,
    TENANT_FIELD,
    UPSERT_BATCH,
    HybridQuery,
    check_identity,
    identity_record,
    payload,
    scored,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


def _documents(document_ids: Sequence[str]) -> models.FieldCondition:
    return models.FieldCondition(key=DOCUMENT_FIELD, match=models.MatchAny(any=list(document_ids)))


def _tenant_condition(tenant: str) -> models.Condition:
    """The tenant's chunks; the default tenant also owns chunks stored before tenants existed."""
    own = models.FieldCondition(key=TENANT_FIELD, match=models.MatchValue(value=tenant))
    if tenant != DEFAULT_TENANT:
        return own
    return models.Filter(should=[own, models.IsEmptyCondition(is_empty=models.PayloadField(key=TENANT_FIELD))])


def _search_filter(tenant: str, document_ids: Sequence[str], *more: models.Condition) -> models.Filter:
    must: list[models.Condition] = [_tenant_condition(tenant), *more]
    if document_ids:
        must.append(_documents(document_ids))
    return models.Filter(must=must)


def _sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _point(record: ChunkRecord) -> models.PointStruct:
    return models.PointStruct(
        id=record.id, vector={DENSE: list(map(float, record.dense)), SPARSE: _sparse(record.sparse)},
        payload=payload(record),
    )


def _fusion(query: HybridQuery) -> models.Query:
    if query.fusion == "rrf":
        return models.RrfQuery(rrf=models.Rrf(k=query.rrf_k, weights=list(query.weights)))
    return models.FusionQuery(fusion=models.Fusion.DBSF)


@dataclass(frozen=True)
class CollectionLayout:
    """How a Qdrant server spreads a new collection: shards, and nodes holding each shard."""

    shard_number: int = 1
    replication_factor: int = 1


class QdrantServerChunkStore:
    """Chunks in one collection of a Qdrant server (`url`) or in memory; `open()` first, `close()` last."""

    def __init__(
        self, *, collection: str, url: str | None = None, location: str | None = None, path: str | None = None,
        api_key: str | None = None, timeout: float = 30.0, layout: CollectionLayout = CollectionLayout(),
    ) -> None:
        if sum(arg is not None for arg in (url, location, path)) != 1:
            raise ValueError("give exactly one of url (Qdrant server), location (':memory:') or path (local mode)")
        self._collection = collection
        self._server = url is not None
        self._layout = layout
        self._client_args: dict[str, Any] = (
            {"url": url, "api_key": api_key, "timeout": max(1, int(timeout))} if url is not None
            else {"location": location} if location is not None else {"path": path})
        self._timeout = timeout
        self._runner = LoopThread(f"qdrant-{collection}")
        self._client: AsyncQdrantClient | None = None

    @property
    def collection(self) -> str:
        return self._collection

    async def open(self, identity: CollectionIdentity) -> None:
        """Connect, create the collection if missing, refuse one built with another model."""
        self._runner.start()

        async def _connect() -> AsyncQdrantClient:  # built on the private loop: its resources live there
            return AsyncQdrantClient(**self._client_args)

        self._client = await self._runner.run(_connect())
        try:
            await self._call(lambda c: self._ensure_collection(c, identity))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await self._runner.run(client.close())
            finally:
                self._runner.stop()

    async def _call(self, operation: Callable[[AsyncQdrantClient], Awaitable[T]]) -> T:
        client = self._client
        if client is None:
            raise RuntimeError("vector store is not open")

        async def _bounded() -> T:
            return await asyncio.wait_for(operation(client), self._timeout)

        try:
            return await self._runner.run(_bounded())
        except TimeoutError as exc:
            raise DeadlineExceeded(f"vector store did not answer within {self._timeout:g}s") from exc
        except (ResponseHandlingException, UnexpectedResponse, ConnectionError) as exc:
            raise Unavailable(f"vector store unavailable: {type(exc).__name__}") from exc

    async def _ensure_collection(self, client: AsyncQdrantClient, identity: CollectionIdentity) -> None:
        if not await client.collection_exists(self._collection) and await self._create(client, identity):
            return
        info = await client.get_collection(self._collection)
        check_identity(self._collection, dict(info.config.metadata or {}), identity)
        if TENANT_FIELD not in (info.payload_schema or {}):  # a collection from before tenants existed
            await self._index_payload(client)

    async def _create(self, client: AsyncQdrantClient, identity: CollectionIdentity) -> bool:
        """Create the collection; False if another replica created it first (then it gets checked)."""
        try:
            await client.create_collection(
                self._collection,
                vectors_config={
                    DENSE: models.VectorParams(size=identity.embedding_dim, distance=models.Distance.COSINE)},
                sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                metadata=identity_record(identity),
                # In memory there is one shard and no replica; a server spreads the collection.
                shard_number=self._layout.shard_number if self._server else None,
                replication_factor=self._layout.replication_factor if self._server else None,
            )
        except UnexpectedResponse as exc:
            if exc.status_code != 409:
                raise
            return False
        await self._index_payload(client)
        log.info("created collection", extra={"collection": self._collection, **identity_record(identity)})
        return True

    async def _index_payload(self, client: AsyncQdrantClient) -> None:
        """Keyword indexes on the fields searches filter by (payload indexes only exist on a server)."""
        if not self._server:
            return
        await client.create_payload_index(self._collection, DOCUMENT_FIELD, models.PayloadSchemaType.KEYWORD)
        await client.create_payload_index(
            self._collection, TENANT_FIELD,
            models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True))

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        for start in range(0, len(records), UPSERT_BATCH):
            await self._upsert_batch([_point(r) for r in records[start:start + UPSERT_BATCH]])

    async def _upsert_batch(self, points: list[models.PointStruct]) -> None:
        await self._call(lambda c: c.upsert(self._collection, points=points, wait=True))

    async def search_dense(
        self, vector: Sequence[float], *, limit: int, tenant: str = DEFAULT_TENANT, document_ids: Sequence[str] = (),
        score_threshold: float | None = None,
    ) -> list[ScoredChunk]:
        return await self._query(dict(query=list(map(float, vector)), using=DENSE, limit=limit,
                                      query_filter=_search_filter(tenant, document_ids),
                                      score_threshold=score_threshold))

    async def search_sparse(
        self, vector: SparseVector, *, limit: int, tenant: str = DEFAULT_TENANT, document_ids: Sequence[str] = (),
        score_threshold: float | None = None,
    ) -> list[ScoredChunk]:
        if not vector.indices:
            return []
        return await self._query(dict(query=_sparse(vector), using=SPARSE, limit=limit,
                                      query_filter=_search_filter(tenant, document_ids),
                                      score_threshold=score_threshold))

    async def search_hybrid(
        self, query: HybridQuery, *, limit: int, tenant: str = DEFAULT_TENANT, document_ids: Sequence[str] = (),
    ) -> list[ScoredChunk]:
        """Dense and sparse candidates fused by the engine, in one call."""
        where = _search_filter(tenant, document_ids)
        prefetch = [models.Prefetch(query=list(map(float, query.dense)), using=DENSE, limit=query.candidates,
                                    filter=where)]
        if query.sparse.indices:
            prefetch.append(models.Prefetch(query=_sparse(query.sparse), using=SPARSE, limit=query.candidates,
                                            filter=where))
        return await self._query(dict(prefetch=prefetch, query=_fusion(query), limit=limit, query_filter=where))

    async def dense_scores(
        self, vector: Sequence[float], ids: Sequence[str], *, tenant: str = DEFAULT_TENANT,
    ) -> dict[str, float]:
        """The cosine of `vector` with each of the tenant's chunks `ids` (missing ids are left out)."""
        if not ids:
            return {}
        only = _search_filter(tenant, (), models.HasIdCondition(has_id=list(ids)))
        hits = await self._query(dict(query=list(map(float, vector)), using=DENSE, limit=len(ids), query_filter=only))
        return {hit.id: hit.score for hit in hits}

    async def _query(self, arguments: dict[str, Any]) -> list[ScoredChunk]:
        response = await self._call(lambda c: c.query_points(
            self._collection, with_payload=True, with_vectors=False, **arguments))
        return [scored(p.id, p.payload, p.score) for p in response.points]

    async def delete_document(self, document_id: str) -> int:
        """Delete every chunk of `document_id`; returns how many there were."""
        selector = models.Filter(must=[_documents([document_id])])
        counted = await self._call(lambda c: c.count(self._collection, count_filter=selector, exact=True))
        if counted.count:
            await self._call(lambda c: c.delete(
                self._collection, points_selector=models.FilterSelector(filter=selector), wait=True))
        return counted.count

    async def chunk_ids(self, document_id: str) -> list[str]:
        """The point ids of `document_id`, in chunk order."""
        selector = models.Filter(must=[_documents([document_id])])
        found: list[tuple[int, str]] = []
        offset: Any = None
        while True:
            points, offset = await self._scroll(selector, offset)
            found.extend((int((p.payload or {}).get("chunk_index", 0)), str(p.id)) for p in points)
            if offset is None:
                return [point_id for _, point_id in sorted(found)]

    async def _scroll(self, selector: models.Filter, offset: Any) -> tuple[list[models.Record], Any]:
        """One page of `selector`'s points (chunk index only) and the offset of the next page (None: last)."""
        return await self._call(lambda c: c.scroll(
            self._collection, scroll_filter=selector, limit=SCROLL_PAGE, offset=offset,
            with_payload=["chunk_index"], with_vectors=False))

    async def count(self) -> int:
        result = await self._call(lambda c: c.count(self._collection, exact=True))
        return result.count
