"""The retriever's Prometheus metrics, created once per process by the composition root."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from genai_common.metrics import latency_histogram
from retriever.domain import SearchMode

log = logging.getLogger(__name__)


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
        self.collection_points = Gauge(
            "retriever_collection_points", "Points (chunks) in the vector collection, counted periodically",
            registry=registry,
        )
        for mode in SearchMode:  # every series exists from the start
            self.search_seconds.labels(mode.value)

    async def watch_collection(self, size: Callable[[], Awaitable[int]], interval: float) -> None:
        """Count the collection every `interval` seconds until cancelled (a failed count is logged)."""
        while True:
            try:
                self.collection_points.set(await size())
            except Exception:
                log.warning("could not count the collection for the metrics", exc_info=True)
            await asyncio.sleep(interval)
