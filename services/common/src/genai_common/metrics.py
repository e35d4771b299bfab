"""Prometheus helpers shared by every service (the ops endpoint that serves them is `ops_server`)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Histogram

# Buckets for request latencies, in seconds, from 1 ms to 2 min.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


_histograms: dict[tuple[int, str], Histogram] = {}


def latency_histogram(name: str, doc: str, labels: tuple[str, ...] = (),
                      registry: CollectorRegistry = REGISTRY) -> Histogram:
    """A latency histogram; asking twice for one name (two servers in one process) gives the same one."""
    key = (id(registry), name)
    if key not in _histograms:
        _histograms[key] = Histogram(name, doc, labels, buckets=LATENCY_BUCKETS, registry=registry)
    return _histograms[key]
