"""The ops check (`make ops-check`): the chart's monitoring proven against a live Prometheus.

One machine runs the platform (`make run`'s launcher), a FakeLLM that also serves vLLM's metrics,
RabbitMQ's Prometheus plugin, and a real Prometheus that scrapes them all as the chart's
ServiceMonitors and PodMonitors say, with static labels standing in for the pod labels a cluster
attaches, and evaluates the chart's PrometheusRules. Traffic goes through every feature (a poison
message included), then the canary checks are measured on healthy traffic and again while the
LLM answers 500. Then:
- every vector selector of every dashboard panel, alert, recording rule and analysis query, with
  its label matchers, matches at least one series (except what only a cluster feeds, listed below);
- every analysis passes on healthy traffic and fails on the fault its service can have here;
- Prometheus evaluates every rule without an error; probes stay out of the latency histograms.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.deploy.chart import NAMESPACE, RELEASE, render, values_of
from tests.deploy.monitoring import (
    Measurement,
    analysis_measurements,
    every_query,
    rule_groups,
    vector_selectors,
    verdict,
)
from tests.ops.prometheus import PrometheusServer
from tests.ops.scraping import monitors, scrape_configs
from tests.ops.stack import Stack, running_stack
from tests.ops.traffic import Traffic, wait_for

CANARY_HASH = "5d8f7c9b6"
WINDOW_SECONDS = 20
# The chart as the platform team deploys it with monitoring and canaries, measured over short
# windows (Prometheus scrapes every second here) and judging from 5 requests on.
VALUES = {
    **values_of("monitoring"),
    "monitoring": {**values_of("monitoring")["monitoring"],
                   "serviceMonitors": {"enabled": True, "interval": "1s", "scrapeTimeout": "1s"}},
    "rollouts": {**values_of("monitoring")["rollouts"],
                 "analysis": {"window": f"{WINDOW_SECONDS}s", "minRequests": 5, "interval": "10s"}},
}
# Series only a cluster feeds, and why none exist on one machine.
CLUSTER_ONLY = {
    "kube_pod_status_ready": "kube-state-metrics, which reads pod status from the Kubernetes API",
    "kube_pod_container_status_restarts_total": "kube-state-metrics, which reads container restarts from the API",
    "DCGM_FI_DEV_GPU_UTIL": "NVIDIA's dcgm-exporter, on GPU nodes",
}
# Monitors of what does not run here.
NOT_SCRAPED_HERE = {"qdrant": "no Qdrant server on one machine: the retriever embeds the Qdrant engine"}
# How each canary's service fails here; the scraper answers within its caller's deadline by design and
# has no fault one can cause from outside (its checks fail on synthetic series: tests/deploy/test_analysis.py).
FAULTS = {"gateway": "the LLM answers 500", "retriever": "Index calls outlive their deadline"}


@dataclass
class Run:
    stack: Stack
    prometheus: PrometheusServer
    started: float
    healthy: dict[str, str] = field(default_factory=dict)  # template -> verdict
    failing: dict[str, str] = field(default_factory=dict)
    objects: list[dict] = field(default_factory=list)


def _measure(prometheus: PrometheusServer, measurements: list[Measurement], want: str, *, never: str = "",
             within: float = 60.0) -> dict[str, str]:
    """Each measurement's verdict, measured every second until all are `want` or `within` seconds
    pass (the first ones may lack samples: Inconclusive; on a loaded machine scrapes and rule
    evaluations lag, hence the generous bound). A `never` verdict, once seen, stays."""
    verdicts: dict[str, str] = {}
    deadline = time.monotonic() + within
    while True:
        for m in measurements:
            if not (never and verdicts.get(m.template) == never):
                verdicts[m.template] = verdict(m, prometheus.query(m.query))
        if all(v == want for v in verdicts.values()) or time.monotonic() > deadline:
            return verdicts
        time.sleep(1)


def _drive(traffic: Traffic, seconds: float, fault: bool = False) -> list[int]:
    statuses: list[int] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        statuses += traffic.chats()
        if fault:
            traffic.slow_indexing()
    return statuses


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    objects = render(VALUES)
    work = tmp_path_factory.mktemp("ops")
    with running_stack(work / "stack") as stack:
        configs = scrape_configs(objects, stack.metrics, vhost=stack.amqp_url.rsplit("/", 1)[-1],
                                 canary_hash=CANARY_HASH)
        (work / "prometheus").mkdir()
        with PrometheusServer(work / "prometheus", configs, rule_groups(objects)) as prometheus:
            result = Run(stack, prometheus, time.time(), objects=objects)
            traffic = Traffic(stack)
            try:
                try:
                    _healthy_then_failing(traffic, prometheus, result)
                except Exception:
                    print(stack.logs(), prometheus.log_tail())  # shown with the failure
                    raise
                yield result
            finally:
                stack.llm.fail_status = None
                traffic.close()


def _healthy_then_failing(traffic: Traffic, prometheus: PrometheusServer, result: Run) -> None:
    """Every feature once; healthy traffic for a window, measured; then the faults, measured."""
    traffic.setup()
    measurements = analysis_measurements(result.objects, CANARY_HASH)
    assert all(s == 200 for s in _drive(traffic, WINDOW_SECONDS + 3))
    result.healthy = _measure(prometheus, measurements, "Successful", never="Failed")
    traffic.stack.llm.fail_status = 500
    failing = [m for m in measurements if _service_of(m.template) in FAULTS]
    assert all(s == 502 for s in _drive(traffic, WINDOW_SECONDS + 3, fault=True))
    # The faults go on while they are measured: on a loaded machine scrapes and rule evaluations lag,
    # and a window that emptied meanwhile would read Inconclusive.
    statuses: list[int] = []
    measuring = threading.Event()
    driver = threading.Thread(target=lambda: statuses.extend(_drive_until(traffic, measuring)), daemon=True)
    driver.start()
    try:
        result.failing = _measure(prometheus, failing, "Failed")
    finally:
        measuring.set()
        driver.join(timeout=60)
    assert all(s == 502 for s in statuses)


def _drive_until(traffic: Traffic, done: threading.Event) -> list[int]:
    statuses: list[int] = []
    while not done.is_set():
        statuses += traffic.chats()
        traffic.slow_indexing()
    return statuses


def _service_of(template: str) -> str:
    """genai-gateway-errors -> gateway."""
    return template.removeprefix(f"{RELEASE}-").split("-", 1)[0]


def test_every_scrape_target_is_up(run: Run) -> None:
    targets = run.prometheus.targets()
    down = [(t["scrapePool"], t["lastError"]) for t in targets if t["health"] != "up"]
    assert not down, down
    scraped = {pool.split("/")[1].removeprefix("genai-") for pool in (t["scrapePool"] for t in targets)}
    assert scraped | set(NOT_SCRAPED_HERE) == set(monitors(run.objects))


def test_every_selector_of_every_panel_rule_and_analysis_has_data(run: Run) -> None:
    missing, cluster_only_used = [], set()
    for query in every_query(run.objects, CANARY_HASH):
        for selector in vector_selectors(query.expr):
            metric = selector.split("{", 1)[0]
            if metric in CLUSTER_ONLY:
                cluster_only_used.add(metric)
                continue
            if not run.prometheus.series(selector, since=run.started):
                missing.append(f"{query.source}: {selector}")
    assert not missing, "selectors without any series:\n" + "\n".join(sorted(set(missing)))
    assert cluster_only_used == set(CLUSTER_ONLY), "a cluster-only entry is no longer used"
    for metric in CLUSTER_ONLY:
        assert not run.prometheus.series(metric, since=run.started), f"{metric} exists here: not cluster-only"


def test_the_dashboards_variables_find_the_namespace_and_versions(run: Run) -> None:
    series = run.prometheus.series(f'genai_build_info{{namespace="{NAMESPACE}"}}', since=run.started)
    assert {s["service"] for s in series} == {"gateway", "scraper", "retriever", "ingest", "imagegen"}
    assert all(s.get("app_kubernetes_io_version") for s in series)


def test_every_canary_check_passes_on_healthy_traffic(run: Run) -> None:
    assert run.healthy and set(run.healthy.values()) == {"Successful"}, run.healthy


def test_every_canary_check_fails_while_its_service_fails(run: Run) -> None:
    templates = {m.template for m in analysis_measurements(run.objects, CANARY_HASH)}
    proven = {t for t in templates if _service_of(t) in FAULTS}
    assert proven == set(run.failing) and set(run.failing.values()) == {"Failed"}, run.failing
    assert {_service_of(t) for t in templates - proven} == {"scraper"}


def test_prometheus_evaluates_every_rule_without_an_error(run: Run) -> None:
    groups = run.prometheus.rule_groups()
    assert {g["name"] for g in groups} == {g["name"] for g in rule_groups(run.objects)}
    broken = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"]
    assert not broken, broken


def test_the_poison_message_raises_the_dead_letter_alert(run: Run) -> None:
    def active() -> list[dict]:
        return [a for g in run.prometheus.rule_groups() for r in g["rules"]
                if r.get("name") == "DeadLetterQueueNotEmpty" for a in r.get("alerts", [])]
    alerts = wait_for(active, "DeadLetterQueueNotEmpty to be pending", within=30)
    assert {a["labels"]["queue"] for a in alerts} == {"ingest.document-uploaded.dlq"}


def test_probes_stay_out_of_the_latency_histograms(run: Run) -> None:
    for selector in ('gateway_http_request_duration_seconds_count{route=~"/healthz|/readyz|/metrics"}',
                     'scraper_grpc_request_duration_seconds_count{method=~"Check|Watch"}',
                     'retriever_grpc_request_duration_seconds_count{method=~"Check|Watch"}'):
        assert not run.prometheus.series(selector, since=run.started), selector
    # ... while the probes were answered all along (Prometheus and the launcher call them).
    assert run.prometheus.series('up{job="genai-gateway"}', since=run.started)
