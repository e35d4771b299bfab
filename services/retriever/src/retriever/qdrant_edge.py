"""The store adapter for one machine: the Qdrant engine embedded in this process (Qdrant Edge).

Every `qdrant_edge` call of the service is in this module (Edge is in beta; its version is pinned).
The shard lives under `<QDRANT_PATH>/edge/<collection>/shard`, the collection's identity (model,
dimension, sparse scheme) beside it in `identity.json`. Edge calls block: they run on a bounded
thread pool under a deadline, writes one at a time. Inserted points land in a plain segment,
searched exactly (in Rust: about 6 ms at 50,000 384-d points on 2 cores). Building the HNSW index
(`EdgeShard.optimize`) holds Python's GIL for its whole run (minutes at 100,000 points; measured:
no other thread of the process ran once meanwhile), so it never runs in the server's process:
once `optimize_after` new points have arrived, the shard is flushed and copied (writes wait for
the copy, searches do not), a child process optimises the copy, and the copy is swapped in after
the writes made meanwhile are replayed on it. One process owns a shard: a second retriever on
the same path is not supported (a Qdrant server is, via QDRANT_URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as edge

from genai_common.errors import DeadlineExceeded
from retriever.domain import DEFAULT_TENANT, ChunkRecord, CollectionIdentity, ScoredChunk, SparseVector
from retriever.local_mode import refuse_local_mode_data
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

# The background index build runs this much nicer than the serving process (os.nice), so on a
# busy machine inserts and searches take the CPU first and the build gets what they leave.
BUILD_NICENESS = 10


def _documents(document_ids: Sequence[str]) -> edge.FieldCondition:
    return edge.FieldCondition(key=DOCUMENT_FIELD, match=edge.MatchAny(any=list(document_ids)))


def _tenant_condition(tenant: str) -> edge.FieldCondition | edge.Filter:
    """The tenant's chunks; the default tenant also owns chunks stored before tenants existed."""
    own = edge.FieldCondition(key=TENANT_FIELD, match=edge.MatchValue(value=tenant))
    if tenant != DEFAULT_TENANT:
        return own
    return edge.Filter(should=[own, edge.IsEmptyCondition(key=TENANT_FIELD)])


def _search_filter(tenant: str, document_ids: Sequence[str], *more: Any) -> edge.Filter:
    must: list[Any] = [_tenant_condition(tenant), *more]
    if document_ids:
        must.append(_documents(document_ids))
    return edge.Filter(must=must)


def _sparse(vector: SparseVector) -> edge.SparseVector:
    return edge.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _point(record: ChunkRecord) -> edge.Point:
    return edge.Point(id=record.id, vector={DENSE: list(map(float, record.dense)), SPARSE: _sparse(record.sparse)},
                      payload=payload(record))


def _fusion(query: HybridQuery) -> Any:
    if query.fusion == "rrf":
        return edge.Fusion.Rrf(k=query.rrf_k, weights=list(query.weights))
    return edge.Fusion.Dbsf()


def _config(identity: CollectionIdentity, optimize_after: int) -> edge.EdgeConfig:
    # Below the indexing threshold a segment stays plain (exact search, cheap inserts); the
    # optimiser indexes bigger ones. 384-d float32 is 1.5 KiB a point.
    threshold_kb = max(1, (optimize_after or 20_000) * identity.embedding_dim * 4 // 1024)
    return edge.EdgeConfig(
        vectors={DENSE: edge.EdgeVectorParams(size=identity.embedding_dim, distance=edge.Distance.Cosine)},
        sparse_vectors={SPARSE: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
        optimizers=edge.EdgeOptimizersConfig(indexing_threshold=threshold_kb),
    )


class EdgeChunkStore:
    """Chunks in an embedded Qdrant shard under `path`; `open()` first, `close()` last."""

    def __init__(
        self, *, collection: str, path: str, timeout: float = 30.0, threads: int = 4, optimize_after: int = 20_000,
    ) -> None:
        self._collection = collection
        self._throwaway = path == ":memory:"  # a shard in a temporary directory, removed at close
        self._root = Path(tempfile.mkdtemp(prefix="edge-")) if self._throwaway else Path(path)
        self._directory = self._root / "edge" / collection
        self._timeout = timeout
        self._threads = threads
        self._optimize_after = optimize_after
        self._shard: edge.EdgeShard | None = None
        self._shard_dir = self._directory / "shard"
        self._pool: ThreadPoolExecutor | None = None
        self._write_lock = asyncio.Lock()
        self._reads: dict[int, int] = {}  # id(shard) -> calls in flight on it
        self._reads_done = asyncio.Condition()
        self._journal: list[edge.UpdateOperation] | None = None  # writes made while a copy is optimised
        self._unoptimized = 0
        self._optimizing: asyncio.Task[None] | None = None

    @property
    def collection(self) -> str:
        return self._collection

    async def open(self, identity: CollectionIdentity) -> None:
        """Open (or create) the shard; refuse one built with another model, or old local-mode data."""
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix=f"edge-{self._collection}")
        try:
            self._shard = await self._blocking(lambda: self._load(identity))
        except BaseException:
            await self.close()
            raise
        info = self._shard.info()  # dense + sparse count as indexed once optimised: a backlog gets indexed soon
        self._unoptimized = max(0, 2 * info.points_count - info.indexed_vectors_count)
        self._maybe_optimize()

    def _load(self, identity: CollectionIdentity) -> edge.EdgeShard:
        identity_path = self._directory / "identity.json"
        if identity_path.exists():
            check_identity(self._collection, json.loads(identity_path.read_text()), identity)
        else:
            refuse_local_mode_data(self._root, self._collection)
            self._directory.mkdir(parents=True, exist_ok=True)
            _write_atomically(identity_path, json.dumps(identity_record(identity)))
        current = self._directory / "current"
        self._shard_dir = self._directory / (current.read_text().strip() if current.exists() else "shard")
        for stale in self._directory.glob("shard*"):  # copies left by an optimisation cut short
            if stale != self._shard_dir:
                shutil.rmtree(stale, ignore_errors=True)
        config = _config(identity, self._optimize_after)
        if (self._shard_dir / "segments").exists() or (self._shard_dir / "wal").exists():
            shard = edge.EdgeShard.load(str(self._shard_dir), config)
        else:
            shard = edge.EdgeShard.create(str(self._shard_dir), config)
            log.info("created collection", extra={"collection": self._collection, **identity_record(identity)})
        indexed = shard.info().payload_schema
        if DOCUMENT_FIELD not in indexed:
            shard.update(edge.UpdateOperation.create_field_index(DOCUMENT_FIELD, edge.PayloadSchemaType.Keyword))
        if TENANT_FIELD not in indexed:
            shard.update(edge.UpdateOperation.create_field_index(TENANT_FIELD, edge.KeywordIndexParams(is_tenant=True)))
        return shard

    async def close(self) -> None:
        if self._optimizing is not None:
            self._optimizing.cancel()
            with contextlib.suppress(BaseException):
                await self._optimizing
        shard, self._shard = self._shard, None
        if shard is not None and self._pool is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, shard.close)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._pool = None
        if self._throwaway:
            shutil.rmtree(self._root, ignore_errors=True)

    async def _blocking(self, call: Callable[[], T]) -> T:
        """Run a blocking Edge call on the pool, under the deadline."""
        if self._pool is None:
            raise RuntimeError("vector store is not open")
        future = asyncio.get_running_loop().run_in_executor(self._pool, call)
        try:
            return await asyncio.wait_for(future, self._timeout)
        except TimeoutError as exc:
            raise DeadlineExceeded(f"vector store did not answer within {self._timeout:g}s") from exc

    def _open_shard(self) -> edge.EdgeShard:
        if self._shard is None:
            raise RuntimeError("vector store is not open")
        return self._shard

    async def _read(self, call: Callable[[edge.EdgeShard], T]) -> T:
        """`call` on the current shard, which stays open until it returns (a swap waits for it)."""
        shard = self._open_shard()
        self._reads[id(shard)] = self._reads.get(id(shard), 0) + 1
        try:
            return await self._blocking(functools.partial(call, shard))
        finally:
            self._reads[id(shard)] -= 1
            async with self._reads_done:
                self._reads_done.notify_all()

    async def _write(self, operation: edge.UpdateOperation) -> None:
        """Apply `operation` (the caller holds the write lock); journaled while a copy is optimised."""
        shard = self._open_shard()
        await self._blocking(functools.partial(shard.update, operation))
        if self._journal is not None:
            self._journal.append(operation)

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        self._open_shard()
        async with self._write_lock:
            for start in range(0, len(records), UPSERT_BATCH):
                await self._write(edge.UpdateOperation.upsert_points(
                    [_point(r) for r in records[start:start + UPSERT_BATCH]]))
        self._unoptimized += len(records)
        self._maybe_optimize()

    async def settle(self) -> None:
        """Wait until no optimisation is under way (benchmarks and tests measure the settled shard)."""
        while self._optimizing is not None and not self._optimizing.done():
            await asyncio.shield(self._optimizing)

    def _maybe_optimize(self) -> None:
        """Index in the background once enough points have arrived since the last optimisation."""
        if not self._optimize_after or self._unoptimized < self._optimize_after or self._shard is None:
            return
        running = self._optimizing
        if running is not None and not running.done() and running is not asyncio.current_task():
            return  # (a run ending calls this too, for the points that arrived while it ran)
        self._unoptimized = 0
        self._optimizing = asyncio.create_task(self._optimize(), name=f"edge-optimize-{self._collection}")

    async def _optimize(self) -> None:
        """Build the indexes on a copy of the shard in a child process (optimising holds the GIL for
        minutes), then swap it in: the writes made meanwhile are replayed on it first."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        copy = self._directory / f"shard-{time.time_ns()}"
        try:
            async with self._write_lock:
                await self._maintain(self._open_shard().flush)
                await self._maintain(functools.partial(shutil.copytree, self._shard_dir, copy))
                self._journal = []
            await _optimize_in_child(copy)
            optimised = await self._maintain(functools.partial(edge.EdgeShard.load, str(copy)))
            replayed = await self._replay(optimised, 0)  # catch up without holding writes back...
            async with self._write_lock:
                await self._replay(optimised, replayed)  # ...then the last few, and swap
                old, old_dir = self._open_shard(), self._shard_dir
                self._shard, self._shard_dir, self._journal = optimised, copy, None
                await self._maintain(functools.partial(_write_atomically, self._directory / "current", copy.name))
        except Exception:  # the copy is dropped; the next run starts again from the live shard
            log.exception("optimising the shard failed; new points stay searched exactly until the next try")
            self._journal = None
            await self._maintain(functools.partial(shutil.rmtree, copy, ignore_errors=True))
            return
        except BaseException:  # closing: a copy left behind is removed at the next open
            self._journal = None
            raise
        async with self._reads_done:  # searches already running on the old shard finish first
            await self._reads_done.wait_for(lambda: not self._reads.get(id(old)))
        self._reads.pop(id(old), None)
        await self._maintain(old.close)
        await self._maintain(functools.partial(shutil.rmtree, old_dir, ignore_errors=True))
        log.info("optimised the shard", extra={"collection": self._collection,
                                               "seconds": round(loop.time() - started, 2)})
        self._maybe_optimize()  # points that arrived meanwhile

    async def _replay(self, shard: edge.EdgeShard, start: int) -> int:
        """Apply the journaled writes from `start` on to `shard`; returns how many are applied in all."""
        journal = self._journal or []
        while start < len(journal):
            await self._maintain(functools.partial(shard.update, journal[start]))
            start += 1
        return start

    async def _maintain(self, call: Callable[[], T]) -> T:
        """A maintenance step of the background index build: on the pool, without the per-call deadline."""
        if self._pool is None:
            raise RuntimeError("vector store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def search_dense(
        self, vector: Sequence[float], *, limit: int, tenant: str = DEFAULT_TENANT, document_ids: Sequence[str] = (),
        score_threshold: float | None = None,
    ) -> list[ScoredChunk]:
        query = edge.Query.Nearest(list(map(float, vector)), using=DENSE)
        return await self._query(edge.QueryRequest(
            limit=limit, query=query, filter=_search_filter(tenant, document_ids), score_threshold=score_threshold,
            with_payload=True))

    async def search_sparse(
        self, vector: SparseVector, *, limit: int, tenant: str = DEFAULT_TENANT, document_ids: Sequence[str] = (),
        score_threshold: float | None = None,
    ) -> list[ScoredChunk]:
        if not vector.indices:
            return []
        query = edge.Query.Nearest(_sparse(vector), using=SPARSE)
        return await self._query(edge.QueryRequest(
            limit=limit, query=query, filter=_search_filter(tenant, document_ids), score_threshold=score_threshold,
            with_payload=True))

    async def search_hybrid(
        self, query: HybridQuery, *, limit: int, tenant: str = DEFAULT_TENANT, document_ids: Sequence[str] = (),
    ) -> list[ScoredChunk]:
        """Dense and sparse candidates fused by the engine, in one call."""
        where = _search_filter(tenant, document_ids)
        prefetches = [edge.Prefetch(limit=query.candidates, filter=where,
                                    query=edge.Query.Nearest(list(map(float, query.dense)), using=DENSE))]
        if query.sparse.indices:
            prefetches.append(edge.Prefetch(limit=query.candidates, filter=where,
                                            query=edge.Query.Nearest(_sparse(query.sparse), using=SPARSE)))
        return await self._query(edge.QueryRequest(
            limit=limit, prefetches=prefetches, query=_fusion(query), filter=where, with_payload=True))

    async def dense_scores(
        self, vector: Sequence[float], ids: Sequence[str], *, tenant: str = DEFAULT_TENANT,
    ) -> dict[str, float]:
        """The cosine of `vector` with each of the tenant's chunks `ids` (missing ids are left out)."""
        if not ids:
            return {}
        only = _search_filter(tenant, (), edge.HasIdCondition(point_ids=set(ids)))
        hits = await self._query(edge.QueryRequest(
            limit=len(ids), query=edge.Query.Nearest(list(map(float, vector)), using=DENSE), filter=only,
            with_payload=True))
        return {hit.id: hit.score for hit in hits}

    async def _query(self, request: edge.QueryRequest) -> list[ScoredChunk]:
        points = await self._read(lambda shard: shard.query(request))
        return [scored(p.id, p.payload, p.score) for p in points]

    async def delete_document(self, document_id: str) -> int:
        """Delete every chunk of `document_id`; returns how many there were."""
        selector = edge.Filter(must=[_documents([document_id])])
        async with self._write_lock:
            counted = await self._read(lambda shard: shard.count(edge.CountRequest(exact=True, filter=selector)))
            if counted:
                await self._write(edge.UpdateOperation.delete_points_by_filter(selector))
        return counted

    async def chunk_ids(self, document_id: str) -> list[str]:
        """The point ids of `document_id`, in chunk order."""
        selector = edge.Filter(must=[_documents([document_id])])
        found: list[tuple[int, str]] = []
        offset: Any = None
        while True:
            request = edge.ScrollRequest(offset=offset, limit=SCROLL_PAGE, filter=selector,
                                         with_payload=["chunk_index"])
            points, offset = await self._read(functools.partial(_scroll, request=request))
            found.extend((int((p.payload or {}).get("chunk_index", 0)), str(p.id)) for p in points)
            if offset is None:
                return [point_id for _, point_id in sorted(found)]

    async def count(self) -> int:
        return await self._read(lambda shard: shard.count(edge.CountRequest(exact=True)))


def _scroll(shard: edge.EdgeShard, *, request: edge.ScrollRequest) -> tuple[list[edge.Record], Any]:
    return shard.scroll(request)


async def _optimize_in_child(path: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "retriever.qdrant_edge", "optimize", str(path), str(BUILD_NICENESS),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        _, errors = await child.communicate()
    except BaseException:
        child.kill()
        await child.wait()
        raise
    if child.returncode != 0:
        raise RuntimeError(f"optimiser exited {child.returncode}: {errors.decode(errors='replace')[-2000:]}")


def _write_atomically(path: Path, text: str) -> None:
    staged = path.with_suffix(".tmp")
    staged.write_text(text)
    os.replace(staged, path)


def optimize_copy(path: str, niceness: int = 0) -> None:
    """Build the indexes of the shard at `path` (run in a child process: it holds the GIL throughout).

    `niceness` lowers the build's CPU priority, so the serving process's inserts and searches go
    first on a busy machine; the build uses what they leave (all of it while the shard is idle)."""
    if niceness:
        os.nice(niceness)
    shard = edge.EdgeShard.load(path)
    try:
        shard.optimize()
        shard.flush()
    finally:
        shard.close()


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "optimize":
    optimize_copy(sys.argv[2], int(sys.argv[3]))
