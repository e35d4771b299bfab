"""Composition root: settings -> model, vector store, domain, gRPC server; serve until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from genai_common.grpc_server import GrpcServer
from genai_common.lifecycle import shutdown_event
from genai_common.metrics import record_build_info
from genai_common.ops_server import OpsServer
from retriever.domain import CollectionIdentity, SearchMode
from retriever.embedding import (
    SentenceTransformerEmbedder,
    default_batch_size,
    load_sentence_transformer,
    resolve_device,
)
from retriever.metrics import RetrieverMetrics
from retriever.onnx_embedding import load_onnx_encoder
from retriever.qdrant_edge import EdgeChunkStore
from retriever.qdrant_server import CollectionLayout, QdrantServerChunkStore
from retriever.retrieval import Retriever, RetrieverConfig
from retriever.servicer import SERVICE_NAME, register
from retriever.settings import RetrieverSettings
from retriever.sparse import Bm25Encoder
from retriever.store import ChunkStore

if TYPE_CHECKING:
    from retriever.embedding import TextEncoder

log = logging.getLogger(__name__)


def build_config(settings: RetrieverSettings) -> RetrieverConfig:
    return RetrieverConfig(
        default_mode=SearchMode(settings.retriever_search_mode),
        default_top_k=min(settings.retriever_default_top_k, settings.retriever_max_top_k),
        max_top_k=settings.retriever_max_top_k,
        max_chunks_per_request=settings.retriever_max_chunks_per_request,
        hybrid_fusion=settings.retriever_hybrid_fusion,
        rrf_k=settings.retriever_rrf_k,
        dense_weight=settings.retriever_dense_weight,
        sparse_weight=settings.retriever_sparse_weight,
        hybrid_candidates=settings.retriever_hybrid_candidates,
        hybrid_in_engine=settings.retriever_hybrid_in_engine,
    )


def build_sparse_encoder(settings: RetrieverSettings) -> Bm25Encoder:
    return Bm25Encoder(
        k1=settings.retriever_bm25_k1, b=settings.retriever_bm25_b, avg_len=settings.retriever_bm25_avg_len,
        stemmer=settings.retriever_stemmer,
    )


def build_store(settings: RetrieverSettings) -> ChunkStore:
    """A Qdrant server's collection when QDRANT_URL is set, else the embedded engine's shard."""
    if settings.qdrant_url:
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        layout = CollectionLayout(settings.qdrant_shard_number, settings.qdrant_replication_factor)
        return QdrantServerChunkStore(collection=settings.qdrant_collection, url=settings.qdrant_url,
                                      api_key=api_key, timeout=settings.qdrant_timeout_seconds, layout=layout)
    return EdgeChunkStore(collection=settings.qdrant_collection, path=settings.qdrant_path,
                          timeout=settings.qdrant_timeout_seconds, threads=settings.qdrant_edge_threads,
                          optimize_after=settings.qdrant_edge_optimize_after_points)


def build_grpc_server(settings: RetrieverSettings, retriever: Retriever,
                      metric_prefix: str = "retriever") -> GrpcServer:
    return GrpcServer(
        host=settings.retriever_host, port=settings.retriever_port, metric_prefix=metric_prefix,
        service_names=[SERVICE_NAME], register=register(retriever),
    )


async def open_retriever(
    settings: RetrieverSettings, embedder: SentenceTransformerEmbedder, stack: AsyncExitStack,
    metrics: RetrieverMetrics | None = None,
) -> Retriever:
    """The domain object over an opened store (closed by `stack`); refuses an incompatible collection."""
    sparse = build_sparse_encoder(settings)
    store = build_store(settings)
    await store.open(CollectionIdentity(embedder.model_name, embedder.dimension, sparse.name))
    stack.push_async_callback(store.close)
    return Retriever(embedder=embedder, sparse=sparse, store=store, config=build_config(settings), metrics=metrics)


async def load_embedder(settings: RetrieverSettings, metrics: RetrieverMetrics | None) -> SentenceTransformerEmbedder:
    onnx = settings.embedding_backend != "torch"  # ONNX Runtime runs on the CPU (settings check the device)
    device = "cpu" if onnx else resolve_device(settings.embedding_device)
    transformer = await asyncio.to_thread(load_sentence_transformer, settings.embedding_model, device)
    model: TextEncoder = transformer
    if onnx:
        model = await asyncio.to_thread(load_onnx_encoder, transformer, settings.embedding_backend,
                                        Path(settings.embedding_cache_dir))
    concurrency = settings.embedding_concurrency or (2 if device.startswith("cuda") else 1)
    embedder = SentenceTransformerEmbedder(
        model, model_name=settings.embedding_model,
        batch_size=settings.embedding_batch_size or default_batch_size(device),
        concurrency=concurrency, observe=metrics.embed_seconds.observe if metrics else None,
    )
    await embedder.warm_up()
    return embedder


async def run(settings: RetrieverSettings) -> None:
    """Serve until SIGTERM/SIGINT: NOT_SERVING -> stop(grace) -> close the vector store -> return."""
    stop = shutdown_event()
    metrics = RetrieverMetrics()
    record_build_info("retriever")
    serving = False
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            OpsServer(settings.retriever_host, settings.retriever_metrics_port, ready=lambda: serving))
        embedder = await load_embedder(settings, metrics)
        retriever = await open_retriever(settings, embedder, stack, metrics)
        if stop.is_set():
            return
        interval = settings.retriever_stats_interval_seconds
        watcher = asyncio.create_task(metrics.watch_collection(retriever.size, interval))
        stack.push_async_callback(_cancelled, watcher)
        server = build_grpc_server(settings, retriever)
        await server.start()
        serving = True
        log.info("retriever serving", extra={"model": settings.embedding_model,
                                             "collection": settings.qdrant_collection,
                                             "default_mode": settings.retriever_search_mode})
        await stop.wait()
        serving = False
        await server.stop(settings.shutdown_grace_seconds)
        log.info("retriever stopped")


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
