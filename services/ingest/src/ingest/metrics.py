"""Prometheus metrics of the ingest worker (served on INGEST_METRICS_PORT by OpsServer)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)

# outcome: indexed | failed | deleted | retried | dead_lettered
DOCUMENTS = Counter("ingest_documents_total", "Uploaded documents handled, by outcome", ("outcome",))
STAGE_SECONDS = Histogram("ingest_stage_duration_seconds", "Time per pipeline stage", ("stage",),
                          buckets=STAGE_BUCKETS)
CHUNKS = Counter("ingest_chunks_total", "Chunks written to the retriever")
