"""The scraper's Prometheus metrics (one instance per process; tests pass their own registry)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from genai_common.metrics import latency_histogram
from scraper.domain import Outcome


class ScraperMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.fetch_duration = latency_histogram(
            "scraper_fetch_duration_seconds", "Time to fetch and extract one URL, by outcome", ("outcome",), registry
        )
        self.fetches = Counter("scraper_fetches", "URLs handled, by outcome", ("outcome",), registry=registry)
        self.extract_duration = latency_histogram(
            "scraper_extract_duration_seconds", "Main-text extraction time per page (queueing included)",
            registry=registry,
        )
        for outcome in Outcome:  # every series exists from the start (rates and alerts need that)
            self.fetches.labels(outcome.value)
            self.fetch_duration.labels(outcome.value)

    def observe_fetch(self, outcome: Outcome, seconds: float) -> None:
        self.fetches.labels(outcome.value).inc()
        self.fetch_duration.labels(outcome.value).observe(seconds)
