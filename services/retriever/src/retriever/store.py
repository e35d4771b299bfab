"""The vector store adapter: one Qdrant collection of chunks with a dense and a sparse vector each.

Same code for Qdrant local mode (`path` or ":memory:") and a Qdrant server (`url`): only the
client's constructor arguments differ. Every client call runs on a private loop thread (see
`loop_thread`) and under a deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from genai_common.errors import DeadlineExceeded, Unavailable
from retriever.domain import ChunkRecord, CollectionIdentity, ScoredChunk, SparseVector
from retriever.loop_thread import LoopThread

log = logging.getLogger(__name__)

DENSE = "dense"
SPARSE = "sparse"
UPSERT_BATCH = 256
SCROLL_PAGE = 256

T = TypeVar("T")


class IncompatibleCollection(RuntimeError):
    """The collection holds vectors made by another model or term scheme than the configured one."""


def mismatch_message(collection: str, stored: Mapping[str, Any], wanted: CollectionIdentity) -> str:
    return (
        f"Qdrant collection {collection!r} was built with embedding model {stored.get('embedding_model')!r} "
        f"(dim {stored.get('embedding_dim')}, sparse {stored.get('sparse_encoder')!r}), but this retriever is "
        f"configured with {wanted.embedding_model!r} (dim {wanted.embedding_dim}, sparse {wanted.sparse_encoder!r}); "
        "their vectors are not comparable. Either set QDRANT_COLLECTION to a new collection name and re-index "
        f"the documents into it, or set EMBEDDING_MODEL back to {stored.get('embedding_model')!r}."
    )


def _document_filter(document_ids: Sequence[str]) -> models.Filter | None:
    if not document_ids:
        return None
    return models.Filter(must=[models.FieldCondition(key="document_id", match=models.MatchAny(any=list(document_ids)))])


def _scored(point: models.ScoredPoint) -> ScoredChunk:
    payload = point.payload or {}
    return ScoredChunk(
        id=str(point.id), document_id=payload.get("document_id", ""), source_name=payload.get("source_name", ""),
        page=int(payload.get("page", 0)), chunk_index=int(payload.get("chunk_index", 0)),
        text=payload.get("text", ""), score=float(point.score),
    )


def _point(record: ChunkRecord) -> models.PointStruct:
    return models.PointStruct(
        id=record.id,
        vector={
            DENSE: list(map(float, record.dense)),
            SPARSE: models.SparseVector(indices=list(record.sparse.indices), values=list(record.sparse.values)),
        },
        payload={
            "document_id": record.document_id, "source_name": record.source_name, "page": record.page,
            "chunk_index": record.chunk_index, "text": record.text,
        },
    )


@dataclass(frozen=True)
class CollectionLayout:
    """How a Qdrant server spreads a new collection: shards, and nodes holding each shard."""

    shard_number: int = 1
    replication_factor: int = 1


class QdrantChunkStore:
    """Chunks in one collection; call `open()` first and `close()` at the end."""

    def __init__(
        self, *, collection: str, url: str | None = None, path: str | None = None, api_key: str | None = None,
        timeout: float = 30.0, layout: CollectionLayout = CollectionLayout(),
    ) -> None:
        if (url is None) == (path is None):
            raise ValueError("give exactly one of url (Qdrant server) or path (local mode, or ':memory:')")
        self._collection = collection
        self._server = url is not None
        self._layout = layout
        self._client_args: dict[str, Any]
        if url is not None:
            self._client_args = {"url": url, "api_key": api_key, "timeout": max(1, int(timeout))}
        elif path == ":memory:":
            self._client_args = {"location": ":memory:"}
        else:
            self._client_args = {"path": path}
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
        wanted = {"embedding_model": identity.embedding_model, "embedding_dim": identity.embedding_dim,
                  "sparse_encoder": identity.sparse_encoder}
        if not await client.collection_exists(self._collection) and await self._create(client, identity, wanted):
            return
        info = await client.get_collection(self._collection)
        stored = dict(info.config.metadata or {})
        if any(stored.get(key) != value for key, value in wanted.items()):
            raise IncompatibleCollection(mismatch_message(self._collection, stored, identity))

    async def _create(self, client: AsyncQdrantClient, identity: CollectionIdentity, wanted: dict[str, Any]) -> bool:
        """Create the collection; False if another replica created it first (then it gets checked)."""
        try:
            await client.create_collection(
                self._collection,
                vectors_config={
                    DENSE: models.VectorParams(size=identity.embedding_dim, distance=models.Distance.COSINE)},
                sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                metadata=wanted,
                # Local mode has one shard and no replicas; a server spreads the collection.
                shard_number=self._layout.shard_number if self._server else None,
                replication_factor=self._layout.replication_factor if self._server else None,
            )
        except UnexpectedResponse as exc:
            if exc.status_code != 409:
                raise
            return False
        if self._server:  # payload indexes only exist on a Qdrant server
            await client.create_payload_index(self._collection, "document_id", models.PayloadSchemaType.KEYWORD)
        log.info("created collection", extra={"collection": self._collection, **wanted})
        return True

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        for start in range(0, len(records), UPSERT_BATCH):
            await self._upsert_batch([_point(r) for r in records[start:start + UPSERT_BATCH]])

    async def _upsert_batch(self, points: list[models.PointStruct]) -> None:
        await self._call(lambda c: c.upsert(self._collection, points=points, wait=True))

    async def search_dense(
        self, vector: Sequence[float], *, limit: int, document_ids: Sequence[str] = (),
        score_threshold: float | None = None,
    ) -> list[ScoredChunk]:
        return await self._query(list(map(float, vector)), DENSE, limit, _document_filter(document_ids),
                                 score_threshold)

    async def search_sparse(
        self, vector: SparseVector, *, limit: int, document_ids: Sequence[str] = (),
        score_threshold: float | None = None,
    ) -> list[ScoredChunk]:
        if not vector.indices:
            return []
        query = models.SparseVector(indices=list(vector.indices), values=list(vector.values))
        return await self._query(query, SPARSE, limit, _document_filter(document_ids), score_threshold)

    async def dense_scores(self, vector: Sequence[float], ids: Sequence[str]) -> dict[str, float]:
        """The cosine of `vector` with each of the chunks `ids` (missing ids are left out)."""
        if not ids:
            return {}
        only = models.Filter(must=[models.HasIdCondition(has_id=list(ids))])
        hits = await self._query(list(map(float, vector)), DENSE, len(ids), only, None)
        return {hit.id: hit.score for hit in hits}

    async def _query(
        self, query: Any, using: str, limit: int, query_filter: models.Filter | None, threshold: float | None,
    ) -> list[ScoredChunk]:
        response = await self._call(lambda c: c.query_points(
            self._collection, query=query, using=using, limit=limit, query_filter=query_filter,
            score_threshold=threshold, with_payload=True, with_vectors=False,
        ))
        return [_scored(p) for p in response.points]

    async def delete_document(self, document_id: str) -> int:
        """Delete every chunk of `document_id`; returns how many there were."""
        selector = _document_filter([document_id])
        counted = await self._call(lambda c: c.count(self._collection, count_filter=selector, exact=True))
        if counted.count:
            await self._call(lambda c: c.delete(
                self._collection, points_selector=models.FilterSelector(filter=selector), wait=True))
        return counted.count

    async def chunk_ids(self, document_id: str) -> list[str]:
        """The point ids of `document_id`, in chunk order."""
        selector = _document_filter([document_id])
        found: list[tuple[int, str]] = []
        offset: Any = None
        while True:
            points, offset = await self._scroll(selector, offset)
            found.extend((int((p.payload or {}).get("chunk_index", 0)), str(p.id)) for p in points)
            if offset is None:
                return [point_id for _, point_id in sorted(found)]

    async def _scroll(self, selector: models.Filter | None, offset: Any) -> tuple[list[models.Record], Any]:
        """One page of `selector`'s points (chunk index only) and the offset of the next page (None: last)."""
        return await self._call(lambda c: c.scroll(
            self._collection, scroll_filter=selector, limit=SCROLL_PAGE, offset=offset,
            with_payload=["chunk_index"], with_vectors=False,
        ))

    async def count(self) -> int:
        result = await self._call(lambda c: c.count(self._collection, exact=True))
        return result.count
