"""Composition root of the ingest worker: settings -> blobs, retriever channel, AMQP, ops endpoint, consumer."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from genai_common.amqp import DOCUMENT_UPLOADED, Amqp, GiveUp, QueueSpec, RetryPolicy
from genai_common.blobs import open_blob_store
from genai_common.grpc_client import open_channel
from genai_common.lifecycle import shutdown_event
from genai_common.loop_lag import LoopLagProbe
from genai_common.metrics import record_build_info
from genai_common.ops_server import OpsServer
from ingest import metrics
from ingest.batching import IndexBatcher
from ingest.budget import ByteBudget
from ingest.chunking import ChunkingPolicy
from ingest.consumer import UploadConsumer
from ingest.extract import Extractor, PdfLimits
from ingest.indexer import RetrieverIndexer
from ingest.pipeline import Indexer, IngestPipeline
from ingest.progress import AmqpProgress
from ingest.settings import IngestSettings

log = logging.getLogger(__name__)


def queue_spec(settings: IngestSettings, on_give_up: GiveUp | None = None) -> QueueSpec:
    retry = RetryPolicy(attempts=settings.ingest_retry_attempts, budget_seconds=settings.ingest_retry_budget_seconds)
    return QueueSpec(settings.ingest_queue, routing_keys=(DOCUMENT_UPLOADED,), prefetch=settings.ingest_prefetch,
                     retry=retry, on_give_up=on_give_up, max_length=settings.ingest_queue_max_length)


def build_pipeline(settings: IngestSettings, progress: AmqpProgress, indexer: Indexer) -> IngestPipeline:
    limits = PdfLimits(wall_seconds=settings.ingest_parse_timeout_seconds,
                       cpu_seconds=settings.ingest_parse_cpu_seconds,
                       memory_bytes=settings.ingest_parse_memory_bytes, max_pages=settings.ingest_max_pages)
    policy = ChunkingPolicy(target_chars=settings.ingest_chunk_chars,
                            overlap_chars=settings.ingest_chunk_overlap_chars,
                            max_chars=settings.ingest_chunk_max_chars)
    return IngestPipeline(open_blob_store(settings.blob_store_url),
                          Extractor(limits, concurrency=settings.ingest_parse_concurrency),
                          indexer, progress, policy=policy, batch_chunks=settings.ingest_index_batch,
                          chunk_timeout_seconds=settings.ingest_chunk_timeout_seconds,
                          budget=ByteBudget(settings.ingest_inflight_bytes))


async def run(settings: IngestSettings) -> None:
    """Consume until SIGTERM; then: not ready → stop intake → finish or requeue in-flight → close."""
    stop = shutdown_event()
    record_build_info("ingest")
    consuming = False
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(LoopLagProbe(metrics.LOOP_LAG_SECONDS))
        channel = open_channel(settings.retriever_addr)
        stack.push_async_callback(channel.close)
        amqp = Amqp(settings.amqp_url, name="ingest", publish_timeout=settings.amqp_publish_timeout_seconds)
        await amqp.connect()
        stack.push_async_callback(amqp.close)
        await stack.enter_async_context(OpsServer(settings.ingest_metrics_host, settings.ingest_metrics_port,
                                                  ready=lambda: consuming and amqp.is_connected))
        indexer = IndexBatcher(RetrieverIndexer(channel, index_deadline=settings.ingest_index_deadline_seconds),
                               max_chunks=settings.ingest_index_batch)
        stack.push_async_callback(indexer.aclose)
        progress = AmqpProgress(amqp)
        consumer = UploadConsumer(build_pipeline(settings, progress, indexer), progress)
        await amqp.consume(queue_spec(settings, consumer.give_up), consumer.handle)
        consuming = True
        log.info("ingest consuming", extra={"queue": settings.ingest_queue, "prefetch": settings.ingest_prefetch})
        await stop.wait()
        consuming = False
        await amqp.stop_consumers(settings.shutdown_grace_seconds)
    log.info("ingest stopped")
