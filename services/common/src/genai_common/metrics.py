"""Prometheus helpers shared by every service (the ops endpoint that serves them is `ops_server`)."""

from __future__ import annotations

from importlib import metadata
from weakref import WeakKeyDictionary

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram

# Buckets for request latencies, in seconds, from 1 ms to 2 min.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


# Per registry (weakly: a test's registry goes away with the test, and its id may be reused).
_histograms: WeakKeyDictionary[CollectorRegistry, dict[str, Histogram]] = WeakKeyDictionary()


def latency_histogram(name: str, doc: str, labels: tuple[str, ...] = (),
                      registry: CollectorRegistry = REGISTRY) -> Histogram:
    """A latency histogram; asking twice for one name (two servers in one process) gives the same one."""
    known = _histograms.setdefault(registry, {})
    if name not in known:
        known[name] = Histogram(name, doc, labels, buckets=LATENCY_BUCKETS, registry=registry)
    return known[name]


_build_info: WeakKeyDictionary[CollectorRegistry, Gauge] = WeakKeyDictionary()


def package_version() -> str:
    """The version of the installed `genai` distribution (every service ships in it)."""
    try:
        return metadata.version("genai")
    except metadata.PackageNotFoundError:
        return "unknown"


def record_build_info(service: str, registry: CollectorRegistry = REGISTRY) -> None:
    """`genai_build_info{service, version} 1`: which version of which service a process runs."""
    gauge = _build_info.get(registry)
    if gauge is None:
        gauge = _build_info[registry] = Gauge("genai_build_info", "The service and version of this process (1)",
                                                  ("service", "version"), registry=registry)
    gauge.labels(service, package_version()).set(1)
