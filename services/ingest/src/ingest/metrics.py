"""Prometheus metrics of the ingest worker (`ingest_<noun>_<unit>`, served on INGEST_METRICS_PORT by
OpsServer). Every label combination exists from the start."""

from __future__ import annotations

import time

from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter, Histogram

from genai_common.loop_lag import lag_histogram

STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600)
OUTCOMES = ("indexed", "failed", "deleted", "retried", "dead_lettered")
STAGES = ("parsing", "chunking", "embedding")

DOCUMENTS = Counter("ingest_documents_total", "Uploaded documents handled, by outcome", ("outcome",))
STAGE_SECONDS = Histogram("ingest_stage_duration_seconds", "Time per pipeline stage", ("stage",),
                          buckets=STAGE_BUCKETS)
CHUNKS = Counter("ingest_chunks_total", "Chunks written to the retriever")
# What each IndexBatch call to the retriever carried: documents in flight share calls.
INDEX_CALL_DOCUMENTS = Histogram("ingest_index_call_documents", "Documents (or parts of one) per Index call",
                                 buckets=(1, 2, 4, 8, 16, 32, 64))
INDEX_CALL_CHUNKS = Histogram("ingest_index_call_chunks", "Chunks per Index call",
                              buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
QUEUE_WAIT_SECONDS = Histogram("ingest_queue_wait_seconds", "From the upload to a worker taking the document "
                               "(first delivery)", buckets=WAIT_BUCKETS)
# A loop that runs late misses AMQP heartbeats (the broker drops the connection at two missed).
LOOP_LAG_SECONDS = lag_histogram("ingest")

for _outcome in OUTCOMES:
    DOCUMENTS.labels(_outcome)
for _stage in STAGES:
    STAGE_SECONDS.labels(_stage)


def observe_queue_wait(uploaded_at: Timestamp) -> None:
    """The wait since `uploaded_at` (an event without the time is not observed)."""
    if uploaded_at.seconds or uploaded_at.nanos:
        QUEUE_WAIT_SECONDS.observe(max(0.0, time.time() - uploaded_at.ToNanoseconds() / 1e9))
