"""Scraping in the chart: a ServiceMonitor or PodMonitor for every component that serves metrics,
selected by the Prometheus operator's label, reaching a real port of real pods, with the pods'
version and canary hash carried onto the series."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.chart import NAMESPACE, RELEASE, VALUE_SETS, component, pod_spec, render, render_set, workloads

MONITOR_KINDS = ("ServiceMonitor", "PodMonitor")
MONITORS_ON = {"monitoring": {"serviceMonitors": {"enabled": True}, "selectorLabels": {"prometheus": "main"}}}
TARGET_LABELS = ["app.kubernetes.io/version", "rollouts-pod-template-hash"]


def _monitors(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {component(o): o for o in objects if o["kind"] in MONITOR_KINDS}


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_no_monitor_without_the_prometheus_operator() -> None:
    assert not _monitors(render())


def test_every_component_that_serves_metrics_is_scraped() -> None:
    monitors = _monitors(render(MONITORS_ON))
    assert set(monitors) == {"gateway", "scraper", "retriever", "ingest", "imagegen", "vllm", "rabbitmq", "qdrant"}
    # The queue workers have no Service (nothing calls them): their pods are scraped directly.
    assert {name for name, m in monitors.items() if m["kind"] == "PodMonitor"} == {"ingest", "imagegen"}
    for monitor in monitors.values():
        assert monitor["metadata"]["labels"]["prometheus"] == "main"  # what the operator selects on
        assert monitor["spec"]["podTargetLabels"] == TARGET_LABELS
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


@pytest.mark.parametrize("value_set", [s for s in VALUE_SETS if s in ("monitoring", "gpu")])
def test_each_monitor_reaches_a_named_port_of_its_pods(value_set: str) -> None:
    objects = render_set(value_set)
    services = [o for o in objects if o["kind"] == "Service"]
    pods = {component(w): w for w in workloads(objects)}
    for name, monitor in _monitors(objects).items():
        selector = monitor["spec"]["selector"]["matchLabels"]
        template = pods[name]["spec"]["template"]
        assert _matches(selector, template["metadata"]["labels"]), name
        container_ports = {p["name"] for c in pod_spec(pods[name])["containers"] for p in c.get("ports", [])}
        if monitor["kind"] == "PodMonitor":
            ports = container_ports
            endpoints = monitor["spec"]["podMetricsEndpoints"]
        else:
            matched = [s for s in services if _matches(selector, s["metadata"]["labels"])]
            assert matched, f"{name}: no Service matches the ServiceMonitor"
            ports = {p["name"] for s in matched for p in s["spec"]["ports"] if p.get("targetPort") in container_ports}
            endpoints = monitor["spec"]["endpoints"]
        for endpoint in endpoints:
            assert endpoint["port"] in ports, f"{name}: port {endpoint['port']} not in {ports}"


def test_our_services_keep_their_own_service_label() -> None:
    """genai_build_info{service=...}: the operator's target label `service` must not rename it."""
    monitors = _monitors(render(MONITORS_ON))
    for name in ("gateway", "scraper", "retriever", "ingest", "imagegen"):
        spec = monitors[name]["spec"]
        endpoints = spec.get("endpoints") or spec["podMetricsEndpoints"]
        assert all(e.get("honorLabels") for e in endpoints), name
    for name in ("vllm", "rabbitmq", "qdrant"):
        assert not any(e.get("honorLabels") for e in monitors[name]["spec"]["endpoints"]), name


def test_rabbitmq_is_scraped_per_queue_in_the_release_vhost() -> None:
    endpoints = _monitors(render(MONITORS_ON))["rabbitmq"]["spec"]["endpoints"]
    detailed = [e for e in endpoints if e["path"] == "/metrics/detailed"]
    assert [e["path"] for e in endpoints] == ["/metrics", "/metrics/detailed"]
    assert detailed[0]["params"] == {"family": ["queue_coarse_metrics", "queue_consumer_count"], "vhost": ["/"]}
    external = render({**MONITORS_ON, "rabbitmq": {"enabled": False},
                       "externalRabbitmq": {"existingSecret": "broker", "vhost": "genai"}})
    assert "rabbitmq" not in _monitors(external)  # a managed broker is scraped by whoever runs it


def test_qdrant_is_scraped_with_its_api_key() -> None:
    endpoint = _monitors(render(MONITORS_ON))["qdrant"]["spec"]["endpoints"][0]
    assert endpoint["authorization"] == {"type": "Bearer",
                                         "credentials": {"name": f"{RELEASE}-qdrant", "key": "api-key"}}


def test_disabled_components_are_not_scraped() -> None:
    monitors = _monitors(render({**MONITORS_ON, "vllm": {"enabled": False}, "qdrant": {"enabled": False},
                                "retriever": {"replicas": 1, "autoscaling": {"enabled": False}}}))
    assert "vllm" not in monitors and "qdrant" not in monitors


def test_the_network_policies_let_prometheus_reach_every_scraped_port() -> None:
    objects = render(MONITORS_ON)
    policies = {component(p): p for p in objects if p["kind"] == "NetworkPolicy"}
    pods = {component(w): w for w in workloads(objects)}
    for name, monitor in _monitors(objects).items():
        container_ports = {p["name"]: p["containerPort"] for c in pod_spec(pods[name])["containers"]
                           for p in c.get("ports", [])}
        allowed = {port["port"] for rule in policies[name]["spec"].get("ingress", [])
                   if any("namespaceSelector" in peer for peer in rule["from"]) for port in rule["ports"]}
        spec = monitor["spec"]
        for endpoint in spec.get("endpoints") or spec["podMetricsEndpoints"]:
            service_ports = {p["name"]: p["targetPort"] for o in objects if o["kind"] == "Service"
                             and component(o) == name for p in o["spec"]["ports"]}
            port_name = service_ports.get(endpoint["port"], endpoint["port"])
            assert container_ports[port_name] in allowed, f"{name}: Prometheus cannot reach {port_name}"
