"""The scraper's Prometheus metrics (`scraper_<noun>_<unit>`; one instance per process, tests pass
their own registry). Every label combination exists from the start (rates and alerts need it)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from genai_common.metrics import latency_histogram
from scraper.domain import BlockReason, Outcome


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
        self.blocked = Counter("scraper_blocked", "URLs the SSRF guard refused, by reason", ("reason",),
                               registry=registry)
        self.fetched_bytes = Counter("scraper_fetched_bytes", "Response body bytes read from the web",
                                     registry=registry)
        self._by_outcome = {o: (self.fetches.labels(o.value), self.fetch_duration.labels(o.value)) for o in Outcome}
        self._by_reason = {r: self.blocked.labels(r.value) for r in BlockReason}

    def observe_fetch(self, outcome: Outcome, seconds: float, *, fetched_bytes: int = 0,
                      blocked: BlockReason | None = None) -> None:
        count, duration = self._by_outcome[outcome]
        count.inc()
        duration.observe(seconds)
        if fetched_bytes:
            self.fetched_bytes.inc(fetched_bytes)
        if blocked is not None:
            self._by_reason[blocked].inc()
