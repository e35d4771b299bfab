"""genai_build_info: every process says which service and which version it runs."""

from __future__ import annotations

from importlib import metadata

from prometheus_client import CollectorRegistry

from genai_common.metrics import record_build_info


def test_build_info_names_the_service_and_the_installed_version() -> None:
    registry = CollectorRegistry()
    record_build_info("scraper", registry)
    record_build_info("scraper", registry)  # a second server in one process: the same series
    record_build_info("retriever", registry)
    version = metadata.version("genai")
    assert registry.get_sample_value("genai_build_info", {"service": "scraper", "version": version}) == 1
    assert registry.get_sample_value("genai_build_info", {"service": "retriever", "version": version}) == 1
