"""Ingest settings: the only place the ingest worker reads its environment."""

from __future__ import annotations

from pydantic import Field

from genai_common.settings import AmqpSettings, BlobSettings, CommonSettings


class IngestSettings(AmqpSettings, BlobSettings, CommonSettings):
    # The retriever (gRPC) that embeds and stores the chunks.
    retriever_addr: str = "127.0.0.1:50052"
    ingest_metrics_host: str = "127.0.0.1"
    ingest_metrics_port: int = 9103

    # The queue this worker owns (bound to `document.uploaded`) and how many documents it holds at
    # once: many, so that small documents share the retriever's model passes (their chunks go out
    # together in IndexBatch calls), while `ingest_inflight_bytes` bounds the memory they take: a
    # document holds its file size from its read until it is indexed. A document whose processing
    # fails (retriever or blob store down) is retried with back-off; after this many attempts or
    # this long since the first failure it is recorded as failed and dead-lettered. The budget
    # outlasts a retriever restart or a short outage.
    ingest_queue: str = "ingest.document-uploaded"
    ingest_prefetch: int = Field(default=128, ge=1)
    ingest_inflight_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    ingest_retry_attempts: int = Field(default=10, ge=1)
    ingest_retry_budget_seconds: float = Field(default=900.0, gt=0)
    # Documents waiting in the queue at most; past it the broker refuses uploads (`reject-publish`)
    # and the gateway answers 503 with Retry-After. Applies when the queue is first declared.
    ingest_queue_max_length: int = Field(default=10000, ge=1)

    # PDF parsing: child processes at once, and the limits each one runs under.
    ingest_parse_concurrency: int = 2
    ingest_parse_timeout_seconds: float = 120.0
    ingest_parse_cpu_seconds: int = 90
    ingest_parse_memory_bytes: int = 1024 * 1024 * 1024
    ingest_max_pages: int = 5000

    # Chunking (characters; 1000/200 measured best against 500/100 and 800/150 on SciFact train,
    # bench/scifact_ingest.py) and indexing: chunks per Index call (one document's slice, or the
    # slices of several documents in flight sent together) and its deadline in seconds.
    ingest_chunk_chars: int = 1000
    ingest_chunk_overlap_chars: int = 200
    ingest_chunk_max_chars: int = 1500
    # Cleaning and chunking one document's text (linear in its length) is given up after this
    # long: the document fails with a reason instead of holding a worker thread.
    ingest_chunk_timeout_seconds: float = Field(default=60.0, gt=0)
    ingest_index_batch: int = 128
    ingest_index_deadline_seconds: float = 120.0
