"""The gateway's composition root: every client and service of the process is built here, in
dependency order, and held on one `Resources` object; the exit stack closes them in reverse.

Start-up order: database (migrated), blob store, broker, peers (scraper, retriever), the LLM
(none without LLM_BASE_URL: chat answers retrieval-only, batch text is refused), then the
features that use them (documents, jobs, chat), the clean-up of uploads and jobs a stopped
gateway left half done, the consumers (`job.progress`; `text.job.requested` when there is an
LLM), and last the reconciliation sweep. Shutdown runs backwards: the sweep and the consumers
stop first, then the clients close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.chat.answering import ChatAnswerer
from gateway.chat.completion import RETRIEVAL_ONLY_PAGE_CHARS
from gateway.chat.context import ContextGatherer, GatherLimits
from gateway.chat.limiter import ConcurrencyLimiter
from gateway.consumer import ProgressConsumer, progress_queue
from gateway.db import open_engine, session_factory
from gateway.documents.library import DocumentLibrary
from gateway.documents.publisher import AmqpUploadPublisher
from gateway.documents.store import DocumentStore
from gateway.http_pool import HttpPool
from gateway.jobs.board import JobBoard
from gateway.jobs.consumer import TextJobHandler
from gateway.jobs.domain import JobLimits
from gateway.jobs.notify import JobWatchers
from gateway.jobs.prompt_filter import PromptFilter
from gateway.jobs.publisher import AmqpJobPublisher
from gateway.jobs.store import JobStore
from gateway.jobs.text_worker import TextJobWorker
from gateway.llm import LLM
from gateway.metrics import CHATS_IN_FLIGHT, CHATS_QUEUED, observe_backend
from gateway.migrate import ensure_schema
from gateway.peers import RetrieverClient, ScraperClient
from gateway.reconcile import Deadlines, Reconciler
from gateway.record_counts import RecordCounts
from gateway.settings import GatewaySettings
from genai_common.amqp import Amqp, RetryPolicy
from genai_common.blobs import BlobStore, open_blob_store
from genai_common.grpc_client import open_channel
from genai_common.metrics import record_build_info

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resources:
    """Everything the routes use, opened by the app's lifespan (`gateway.deps` hands them out)."""

    settings: GatewaySettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    blobs: BlobStore
    amqp: Amqp
    chat: ChatAnswerer
    documents: DocumentLibrary
    jobs: JobBoard
    progress: ProgressConsumer
    reconciler: Reconciler


async def open_resources(settings: GatewaySettings, stack: AsyncExitStack) -> Resources:
    """Open and build everything; `stack` closes it all (consumers first)."""
    await ensure_schema(settings)  # migrates, or waits for the release's migration Job
    engine = open_engine(settings.database_url, busy_timeout=settings.gateway_database_wait_seconds,
                         pool_timeout=settings.gateway_database_wait_seconds)
    stack.push_async_callback(engine.dispose)
    sessions = session_factory(engine)
    blobs = open_blob_store(settings.blob_store_url)
    amqp = Amqp(settings.amqp_url, name="gateway", publish_timeout=settings.amqp_publish_timeout_seconds)
    await amqp.connect()
    stack.push_async_callback(amqp.close)
    scraper, retriever = _open_peers(settings, stack)
    llm = _open_llm(settings, stack)

    document_store, job_store = DocumentStore(sessions), JobStore(sessions)
    documents = DocumentLibrary(document_store, blobs, AmqpUploadPublisher(amqp), retriever,
                                max_bytes=settings.upload_max_bytes)
    jobs = JobBoard(job_store, AmqpJobPublisher(amqp), PromptFilter(settings.jobs_blocked_terms),
                    JobWatchers(), _job_limits(settings), text_enabled=llm is not None)
    chat = _chat(settings, scraper, retriever, llm)
    progress = ProgressConsumer(documents=documents.apply_progress, jobs=jobs.apply)
    _start_metrics(RecordCounts(document_store, job_store, settings.gateway_stats_interval_seconds), chat, stack)

    await documents.forget_unpublished()
    await jobs.republish_stale()
    await _start_consumers(settings, amqp, progress, jobs, llm, stack)
    reconciler = _start_sweep(settings, documents, jobs, lambda: progress.replay_dead_letters(amqp), stack)
    return Resources(settings=settings, engine=engine, sessions=sessions, blobs=blobs, amqp=amqp, chat=chat,
                     documents=documents, jobs=jobs, progress=progress, reconciler=reconciler)


def _start_sweep(settings: GatewaySettings, documents: DocumentLibrary, jobs: JobBoard,
                 replay: Callable[[], Awaitable[int]], stack: AsyncExitStack) -> Reconciler:
    """The periodic reconciliation sweep (gateway.reconcile), cancelled first at shutdown."""
    deadlines = Deadlines(queued=timedelta(seconds=settings.gateway_sweep_queued_seconds),
                          running=timedelta(seconds=settings.gateway_sweep_running_seconds),
                          give_up=timedelta(seconds=settings.gateway_sweep_give_up_seconds))
    reconciler = Reconciler(documents, jobs, replay, deadlines)
    sweeping = asyncio.create_task(reconciler.run(settings.gateway_sweep_interval_seconds), name="sweep")

    async def stop() -> None:
        sweeping.cancel()
        # Bounded: a sweep cancelled halfway through a broker call must not hold up shutdown.
        await asyncio.wait({sweeping}, timeout=settings.shutdown_grace_seconds)

    stack.push_async_callback(stop)
    return reconciler


def _start_metrics(counts: RecordCounts, chat: ChatAnswerer, stack: AsyncExitStack) -> None:
    """genai_build_info, gauges read at scrape time (chats in flight and queued) and the record counts' refresher."""
    record_build_info("gateway")
    CHATS_IN_FLIGHT.set_function(lambda: chat.limiter.in_flight)
    CHATS_QUEUED.set_function(lambda: chat.limiter.waiting)
    refresher = asyncio.create_task(counts.run(), name="record-counts")

    async def stop() -> None:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher

    stack.push_async_callback(stop)


def _open_peers(settings: GatewaySettings, stack: AsyncExitStack) -> tuple[ScraperClient, RetrieverClient]:
    """One gRPC channel per peer."""
    scraper_channel = open_channel(settings.scraper_addr)
    stack.push_async_callback(scraper_channel.close)
    retriever_channel = open_channel(settings.retriever_addr)
    stack.push_async_callback(retriever_channel.close)
    return (ScraperClient(scraper_channel, settings.gateway_scrape_deadline_seconds),
            RetrieverClient(retriever_channel, settings.gateway_retrieve_deadline_seconds))


def _open_llm(settings: GatewaySettings, stack: AsyncExitStack) -> LLM | None:
    """The LLM at LLM_BASE_URL, or None when none is configured."""
    if not settings.llm_base_url:
        log.warning("LLM_BASE_URL is unset: chat answers in retrieval-only mode and batch text jobs "
                    "are refused (503)")
        return None
    # Every chat in flight (LLM_MAX_CONCURRENCY), every batch-text job and a model lookup can hold
    # a connection at once: none ever waits for one.
    pool = HttpPool(settings.llm_base_url,
                    max_connections=settings.llm_max_concurrency + settings.text_job_concurrency + 1,
                    max_age=settings.llm_connection_max_age_seconds, connect_deadline=settings.llm_timeout_seconds)
    stack.push_async_callback(pool.close)
    return LLM(pool, api_key=settings.llm_api_key.get_secret_value(), model=settings.llm_model,
               deadline=settings.llm_timeout_seconds)


def _job_limits(settings: GatewaySettings) -> JobLimits:
    return JobLimits(
        sizes=tuple(settings.jobs_image_sizes), max_images=settings.jobs_max_images,
        max_steps=settings.jobs_max_steps, default_steps=settings.jobs_default_steps,
        max_prompt_chars=settings.jobs_max_prompt_chars, max_text_prompts=settings.jobs_max_text_prompts,
        max_text_tokens=settings.jobs_max_text_tokens,
    )


def _chat(settings: GatewaySettings, scraper: ScraperClient, retriever: RetrieverClient,
          llm: LLM | None) -> ChatAnswerer:
    page_chars = settings.gateway_scrape_max_chars_per_page
    if llm is None:
        # Retrieval-only answers quote the sentences of a page that match the question, wherever
        # they are: they read more of each page than a prompt could hold.
        page_chars = max(page_chars, RETRIEVAL_ONLY_PAGE_CHARS)
        slots = settings.gateway_retrieval_only_max_concurrency
        limiter = ConcurrencyLimiter(slots, queue=slots)
    else:
        limiter = ConcurrencyLimiter(settings.llm_max_concurrency, settings.llm_max_queue)
    limits = GatherLimits(
        max_urls=settings.gateway_scrape_max_urls, max_chars_per_page=page_chars,
        scrape_deadline=settings.gateway_scrape_deadline_seconds,
        retrieve_deadline=settings.gateway_retrieve_deadline_seconds,
    )
    return ChatAnswerer(ContextGatherer(scraper, retriever, limits, observe=observe_backend), llm, limiter)


async def _start_consumers(settings: GatewaySettings, amqp: Amqp, progress: ProgressConsumer, jobs: JobBoard,
                           llm: LLM | None, stack: AsyncExitStack) -> None:
    # Stopped before anything else closes: in-flight deliveries finish while their clients are open.
    stack.push_async_callback(amqp.stop_consumers, settings.shutdown_grace_seconds)
    await amqp.consume(progress_queue(settings.gateway_progress_retry_attempts,
                                      settings.gateway_progress_retry_budget_seconds), progress)
    if llm is not None:
        handler = TextJobHandler(TextJobWorker(jobs, llm))
        retry = RetryPolicy(attempts=settings.text_job_retry_attempts,
                            budget_seconds=settings.text_job_retry_budget_seconds)
        await amqp.consume(handler.queue(settings.text_job_queue, concurrency=settings.text_job_concurrency,
                                         retry=retry, max_length=settings.text_job_queue_max_length), handler)
