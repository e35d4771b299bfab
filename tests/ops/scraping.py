"""Prometheus scrape configuration for one machine, made from the chart's ServiceMonitors and
PodMonitors: the same paths, parameters and honorLabels, pointed at local processes, with static
labels standing in for what the Prometheus operator attaches in a cluster (namespace, pod,
container, service, job, endpoint, and each podTargetLabel read from the rendered pod template)."""

from __future__ import annotations

import re
from typing import Any

from tests.deploy.chart import NAMESPACE, RELEASE, component, workloads

MONITOR_KINDS = ("ServiceMonitor", "PodMonitor")
HASH_LABEL = "rollouts-pod-template-hash"


def _label_name(pod_label: str) -> str:
    """How the operator names a podTargetLabel on the series: app.kubernetes.io/version -> app_kubernetes_io_version."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", pod_label)


def monitors(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {component(o): o for o in objects if o["kind"] in MONITOR_KINDS}


def scrape_configs(objects: list[dict[str, Any]], addresses: dict[str, str], *, vhost: str,
                   canary_hash: str) -> list[dict[str, Any]]:
    """One scrape job per monitor endpoint whose component runs here (`addresses`: component ->
    host:port). The pods of a Rollout carry `canary_hash` as their pod template hash."""
    pods = {component(w): w for w in workloads(objects)}
    configs = []
    for name, monitor in sorted(monitors(objects).items()):
        if name not in addresses:
            continue
        workload = pods[name]
        template = workload["spec"]["template"]["metadata"]["labels"]
        pod_labels = {**template, **({HASH_LABEL: canary_hash} if workload["kind"] == "Rollout" else {})}
        labels = {"namespace": NAMESPACE, "pod": f"{RELEASE}-{name}-{canary_hash}-local", "container": name}
        for pod_label in monitor["spec"]["podTargetLabels"]:
            if pod_label in pod_labels:
                labels[_label_name(pod_label)] = pod_labels[pod_label]
        service_monitor = monitor["kind"] == "ServiceMonitor"
        endpoints = monitor["spec"]["endpoints"] if service_monitor else monitor["spec"]["podMetricsEndpoints"]
        for index, endpoint in enumerate(endpoints):
            target = {**labels, "endpoint": endpoint["port"]}
            if service_monitor:
                target.update(service=f"{RELEASE}-{name}", job=f"{RELEASE}-{name}")
            else:
                target["job"] = f"{NAMESPACE}/{monitor['metadata']['name']}"
            params = {key: [vhost if key == "vhost" else value for value in values]
                      for key, values in endpoint.get("params", {}).items()}
            configs.append({
                "job_name": f"{monitor['kind'].lower()}/{monitor['metadata']['name']}/{index}",
                "metrics_path": endpoint["path"],
                "honor_labels": bool(endpoint.get("honorLabels")),
                **({"params": params} if params else {}),
                "static_configs": [{"targets": [addresses[name]], "labels": target}],
            })
    return configs
