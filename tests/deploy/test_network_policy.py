"""The rendered NetworkPolicies allow exactly the edges the architecture needs: evaluated over a
table of (from, to, port) connections, required ones allowed and forbidden ones denied."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.chart import NAMESPACE, VALUE_SETS, component, render, render_set, workloads
from tests.deploy.netpol import Endpoint, PolicySet, outside, pod

PUBLIC_V4, PUBLIC_V6 = "93.184.216.34", "2606:4700:4700::1111"
PRIVATE = ["10.0.0.1", "10.255.1.1", "172.16.5.5", "172.31.255.254", "192.168.1.10", "100.64.0.1", "100.127.255.1",
           "169.254.169.254", "169.254.170.2", "127.0.0.1", "fd00:ec2::254", "fc00::1", "fe80::1", "::1",
           "::ffff:10.0.0.1"]
OTHERS = {
    "dns": pod("coredns", "kube-system", {"k8s-app": "kube-dns"}, "10.244.9.2"),
    "prometheus": pod("prometheus", "monitoring", {"app": "prometheus"}, "10.244.9.3"),
    "keda": pod("keda-operator", "keda", {"app": "keda-operator"}, "10.244.9.4"),
    "ingress": pod("ingress-nginx", "ingress-nginx", {"app": "ingress-nginx"}, "10.244.9.5"),
    "stranger": pod("stranger", NAMESPACE, {"app": "debug"}, "10.244.9.6"),
    "elsewhere": pod("elsewhere", "other", {"app": "web"}, "10.244.9.7"),
}


class Cluster:
    """The release's pods (one per workload, labels from its pod template) and the policies."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.policies = PolicySet(objects)
        self.pods: dict[str, Endpoint] = dict(OTHERS)
        for index, workload in enumerate(workloads(objects), start=10):
            labels = workload["spec"]["template"]["metadata"]["labels"]
            self.pods[component(workload)] = pod(workload["metadata"]["name"], NAMESPACE, labels, f"10.244.1.{index}")

    def endpoint(self, name: str) -> Endpoint:
        return self.pods[name] if name in self.pods else outside(name)

    def allows(self, source: str, destination: str, port: int, protocol: str = "TCP") -> bool:
        return self.policies.allows(self.endpoint(source), self.endpoint(destination), port, protocol)


REQUIRED = [
    ("gateway", "scraper", 50051), ("gateway", "retriever", 50052), ("gateway", "rabbitmq", 5672),
    ("gateway", "postgresql", 5432), ("gateway", "vllm", 8000), ("ingest", "retriever", 50052),
    ("ingest", "rabbitmq", 5672), ("imagegen", "rabbitmq", 5672), ("retriever", "qdrant", 6333),
    ("migrations", "postgresql", 5432), ("ingress", "gateway", 8000), ("keda", "rabbitmq", 15672),
    ("prometheus", "gateway", 8000), ("prometheus", "scraper", 9101), ("prometheus", "retriever", 9102),
    ("prometheus", "ingest", 9103), ("prometheus", "imagegen", 9104), ("prometheus", "vllm", 8000),
    ("prometheus", "rabbitmq", 15692), ("prometheus", "qdrant", 6333),
    ("scraper", PUBLIC_V4, 443), ("scraper", PUBLIC_V4, 80), ("scraper", PUBLIC_V6, 443), ("gateway", "redis", 6379),
    ("rabbitmq", "rabbitmq", 25672), ("rabbitmq", "rabbitmq", 4369), ("qdrant", "qdrant", 6335),
    ("vllm", PUBLIC_V4, 443), ("imagegen", PUBLIC_V4, 443),  # model downloads into the cache
]
FORBIDDEN = [
    *[("scraper", address, port) for address in PRIVATE for port in (80, 443)],
    ("scraper", PUBLIC_V4, 22), ("scraper", PUBLIC_V4, 8080), ("scraper", "gateway", 8000),
    ("scraper", "rabbitmq", 5672), ("scraper", "postgresql", 5432), ("scraper", "qdrant", 6333),
    ("scraper", "dns", 443), ("scraper", "prometheus", 9090),
    ("ingest", "scraper", 50051), ("ingest", "postgresql", 5432), ("ingest", PUBLIC_V4, 443),
    ("imagegen", "retriever", 50052), ("imagegen", "postgresql", 5432), ("imagegen", "scraper", 50051),
    ("retriever", "rabbitmq", 5672), ("retriever", PUBLIC_V4, 443), ("retriever", "postgresql", 5432),
    ("gateway", "qdrant", 6333), ("gateway", PUBLIC_V4, 443), ("gateway", "169.254.169.254", 80),
    ("vllm", "gateway", 8000), ("vllm", "169.254.169.254", 80), ("vllm", "rabbitmq", 5672),
    ("stranger", "gateway", 8000), ("elsewhere", "gateway", 8000), ("elsewhere", "scraper", 50051),
    ("elsewhere", "rabbitmq", 5672), ("elsewhere", "postgresql", 5432), ("stranger", "qdrant", 6333),
    ("prometheus", "postgresql", 5432), ("prometheus", "rabbitmq", 5672), ("keda", "rabbitmq", 5672),
    ("ingress", "gateway", 9101), ("ingress", "scraper", 50051), (PUBLIC_V4, "gateway", 8000),
    ("postgresql", PUBLIC_V4, 443), ("rabbitmq", PUBLIC_V4, 443), ("qdrant", PUBLIC_V4, 443),
    ("migrations", "rabbitmq", 5672),
    # Redis holds the gateway's limit counters: the gateway alone reaches it, and it reaches nothing.
    ("scraper", "redis", 6379), ("retriever", "redis", 6379), ("ingest", "redis", 6379), ("imagegen", "redis", 6379),
    ("vllm", "redis", 6379), ("migrations", "redis", 6379), ("stranger", "redis", 6379), ("elsewhere", "redis", 6379),
    ("prometheus", "redis", 6379), ("ingress", "redis", 6379), ("gateway", "redis", 6380), ("redis", "gateway", 8000),
    ("redis", PUBLIC_V4, 443), ("redis", "rabbitmq", 5672), ("redis", "postgresql", 5432),
]


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return Cluster(render_set("default"))


@pytest.mark.parametrize(("source", "destination", "port"), REQUIRED)
def test_required_edges_are_allowed(cluster: Cluster, source: str, destination: str, port: int) -> None:
    assert cluster.allows(source, destination, port)


@pytest.mark.parametrize(("source", "destination", "port"), FORBIDDEN)
def test_forbidden_edges_are_denied(cluster: Cluster, source: str, destination: str, port: int) -> None:
    assert not cluster.allows(source, destination, port)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_pod_resolves_names_and_nothing_else_by_default(value_set: str) -> None:
    cluster = Cluster(render_set(value_set))
    for name in [n for n, e in cluster.pods.items() if n not in OTHERS]:
        assert cluster.allows(name, "dns", 53, "UDP") and cluster.allows(name, "dns", 53, "TCP"), name
        assert not cluster.allows(name, "dns", 80), name
        assert not cluster.allows("stranger", name, 8000), name


def test_the_scrapers_cluster_ranges_are_denied_even_when_public() -> None:
    ranges = {"pods": "34.118.0.0/16", "pods6": "2600:1900:4000::/44"}
    cluster = Cluster(render({"networkPolicy": {"clusterCIDRs": ranges}}))
    assert not cluster.allows("scraper", "34.118.7.9", 443)
    assert not cluster.allows("scraper", "2600:1900:4000::10", 443)
    assert cluster.allows("scraper", "34.119.7.9", 443)


def test_the_scraper_may_use_exactly_its_allowed_ports() -> None:
    cluster = Cluster(render({"scraper": {"env": {"SCRAPER_ALLOWED_PORTS": "443,8443"}}}))
    assert cluster.allows("scraper", PUBLIC_V4, 8443)
    assert not cluster.allows("scraper", PUBLIC_V4, 80)


def test_external_dependencies_are_reached_on_their_ports_and_ranges_only() -> None:
    cluster = Cluster(render_set("external"))
    assert cluster.allows("gateway", "10.30.0.10", 5432)
    assert cluster.allows("migrations", "10.30.0.10", 5432)
    assert not cluster.allows("gateway", "10.30.0.11", 5432)
    assert cluster.allows("ingest", "10.20.0.7", 5671) and not cluster.allows("ingest", "10.21.0.7", 5671)
    assert cluster.allows("retriever", "35.1.2.3", 6333) and not cluster.allows("retriever", "35.1.2.3", 443)
    assert cluster.allows("gateway", "35.1.2.4", 443)  # the external LLM (no ranges given)
    assert not cluster.allows("imagegen", PUBLIC_V4, 443)  # its model cache is filled beforehand
    assert not cluster.allows("scraper", "10.30.0.10", 5432)
    assert cluster.allows("gateway", "10.40.0.8", 6380)  # the external Redis: its port, its range
    assert not cluster.allows("gateway", "10.40.0.9", 6380) and not cluster.allows("gateway", "10.40.0.8", 6379)
    assert not cluster.allows("ingest", "10.40.0.8", 6380) and not cluster.allows("scraper", "10.40.0.8", 6380)
    assert "redis" not in cluster.pods


def test_gpu_workloads_that_run_offline_have_no_internet() -> None:
    offline = {"modelCache": {"download": False}}
    cluster = Cluster(render({"vllm": offline, "imagegen": offline}))
    assert not cluster.allows("vllm", PUBLIC_V4, 443)
    assert not cluster.allows("imagegen", PUBLIC_V4, 443)


def test_namespaces_of_prometheus_keda_and_the_ingress_controller_come_from_values() -> None:
    labels = {"kubernetes.io/metadata.name": "observability"}
    cluster = Cluster(render({"networkPolicy": {"prometheus": {"namespaceLabels": labels}}}))
    assert not cluster.allows("prometheus", "gateway", 8000)
    cluster.pods["prometheus"] = pod("prometheus", "observability", {"app": "prometheus"}, "10.244.9.3")
    assert cluster.allows("prometheus", "gateway", 8000)


def test_the_evaluator_follows_the_api_semantics() -> None:
    web = pod("web", "a", {"app": "web"}, "10.244.0.2")
    db = pod("db", "a", {"app": "db"}, "10.244.0.3")
    assert PolicySet([]).allows(web, db, 5432)  # no policy: everything flows
    deny = {"kind": "NetworkPolicy", "metadata": {"namespace": "a"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    assert not PolicySet([deny]).allows(web, db, 5432)
    assert PolicySet([deny]).allows(db, outside(PUBLIC_V4), 443)  # only ingress is isolated
    allow = {"kind": "NetworkPolicy", "metadata": {"namespace": "a"}, "spec": {
        "podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}]}}
    assert PolicySet([deny, allow]).allows(web, db, 5432)
    assert not PolicySet([deny, allow]).allows(web, db, 22)
    assert not PolicySet([deny, allow]).allows(pod("web", "b", {"app": "web"}, "10.244.0.4"), db, 5432)
    with pytest.raises(NotImplementedError):
        PolicySet([{**allow, "spec": {**allow["spec"], "podSelector": {"matchExpressions": []}}}]).allows(web, db, 1)
