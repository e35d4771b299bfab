"""The retriever's Prometheus metrics, created once per process by the composition root."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from genai_common.metrics import latency_histogram


class RetrieverMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.embed_seconds = latency_histogram(
            "retriever_embed_duration_seconds", "Time to embed one batch of texts (queries or chunks)", (), registry,
        )
        self.search_seconds = latency_histogram(
            "retriever_search_duration_seconds", "Search latency, embedding included", ("mode",), registry,
        )
        self.indexed_chunks = Counter(
            "retriever_indexed_chunks_total", "Chunks embedded and upserted into the vector store", registry=registry,
        )
