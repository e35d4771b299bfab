"""Canary releases: with rollouts on, the chosen services are Argo Rollouts whose steps run
AnalysisTemplates on the canary's own series; every check is NaN-safe and judges nothing below
its minimum of traffic. Off, they are plain Deployments."""

from __future__ import annotations

import math
from typing import Any

import helm_python
import promql_parser
import pytest

from tests.deploy.chart import RELEASE, named, render, render_set
from tests.deploy.monitoring import (
    CANARY_HASH_ARG,
    analysis_measurements,
    analysis_templates,
    vector_selectors,
    verdict,
)

ON = {"monitoring": {"serviceMonitors": {"enabled": True}}, "rollouts": {"enabled": True}}
GATEWAY_CHECKS = ["errors", "latency", "time-to-first-token", "answers-without-sources"]


def _analysis_steps(rollout: dict[str, Any]) -> list[dict[str, Any]]:
    return [step["analysis"] for step in rollout["spec"]["strategy"]["canary"]["steps"] if "analysis" in step]


def test_off_every_service_is_a_deployment() -> None:
    objects = render()
    assert not named(objects, "Rollout") and not analysis_templates(objects)
    assert f"{RELEASE}-gateway" in named(objects, "Deployment")


def test_on_the_gateway_is_a_rollout_that_its_autoscaler_scales() -> None:
    objects = render(ON)
    rollouts = named(objects, "Rollout")
    assert set(rollouts) == {f"{RELEASE}-gateway"}
    assert f"{RELEASE}-gateway" not in named(objects, "Deployment")
    hpa = named(objects, "HorizontalPodAutoscaler")[f"{RELEASE}-gateway"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                                             "name": f"{RELEASE}-gateway"}
    assert "replicas" not in rollouts[f"{RELEASE}-gateway"]["spec"]  # the HPA owns the count


def test_steps_follow_the_weights_and_analyse_each_one() -> None:
    objects = render({**ON, "rollouts": {"enabled": True, "weights": "10,30,60"}})
    rollout = named(objects, "Rollout")[f"{RELEASE}-gateway"]
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert [s.get("setWeight") for s in steps if "setWeight" in s] == [10, 30, 60]
    assert [next(iter(s)) for s in steps] == ["setWeight", "analysis"] * 3
    for analysis in _analysis_steps(rollout):
        assert [t["templateName"] for t in analysis["templates"]] == [f"{RELEASE}-gateway-{c}" for c in GATEWAY_CHECKS]
        assert analysis["args"] == [{"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}]


def test_any_stateless_service_can_be_a_canary_with_the_checks_that_fit_it() -> None:
    objects = render_set("monitoring")
    assert set(named(objects, "Rollout")) == {f"{RELEASE}-{s}" for s in ("gateway", "scraper", "retriever")}
    templates = analysis_templates(objects)
    for service in ("scraper", "retriever"):
        assert {n for n in templates if n.startswith(f"{RELEASE}-{service}-")} == {
            f"{RELEASE}-{service}-errors", f"{RELEASE}-{service}-latency"}
    referenced = {t["templateName"] for r in named(objects, "Rollout").values() for a in _analysis_steps(r)
                  for t in a["templates"]}
    assert referenced == set(templates)


def test_a_check_can_be_switched_off() -> None:
    objects = render({**ON, "rollouts": {"enabled": True, "analysis": {"checks": {"timeToFirstToken": False}}}})
    assert f"{RELEASE}-gateway-time-to-first-token" not in analysis_templates(objects)


def test_every_query_selects_only_the_canary_pods_of_the_release() -> None:
    for measurement in analysis_measurements(render_set("monitoring"), canary_hash="7d9c5b8f4"):
        promql_parser.parse(measurement.query)
        for selector in vector_selectors(measurement.query):
            assert 'namespace="genai"' in selector and 'rollouts_pod_template_hash="7d9c5b8f4"' in selector, (
                measurement.template, selector)


def test_every_query_waits_for_its_minimum_of_traffic() -> None:
    objects = render({**ON, "rollouts": {"enabled": True, "analysis": {"minRequests": 75}}})
    for name, template in analysis_templates(objects).items():
        query = template["spec"]["metrics"][0]["provider"]["prometheus"]["query"]
        assert query.rstrip().endswith(">= 75)") and "and on ()" in query, name
        assert template["spec"]["args"] == [{"name": "canary-hash"}]
        assert CANARY_HASH_ARG in query


@pytest.mark.parametrize("result", [[], [math.nan], [0.1, 0.2]])
def test_no_data_or_nan_is_never_a_pass_nor_a_failure(result: list[float]) -> None:
    for measurement in analysis_measurements(render(ON), canary_hash="h"):
        assert verdict(measurement, result) == "Inconclusive", measurement.template


def test_a_value_past_the_threshold_fails_and_one_within_passes() -> None:
    thresholds = {"errors": 0.02, "latency": 10, "time-to-first-token": 5, "answers-without-sources": 0.5}
    for measurement in analysis_measurements(render(ON), canary_hash="h"):
        limit = thresholds[measurement.metric]
        assert verdict(measurement, [limit]) == "Successful"
        assert verdict(measurement, [limit * 1.01]) == "Failed"
        assert verdict(measurement, [math.inf]) == "Failed"


def test_a_failed_check_aborts_after_its_failure_limit_and_an_all_quiet_step_pauses() -> None:
    for template in analysis_templates(render_set("monitoring")).values():
        metric = template["spec"]["metrics"][0]
        assert metric["failureLimit"] == 1 and metric["count"] == 5
        assert metric["inconclusiveLimit"] == metric["count"] - 1


def test_a_canary_cannot_share_a_one_process_store() -> None:
    sqlite = {**ON, "postgresql": {"enabled": False}, "gateway": {"replicas": 1, "autoscaling": {"enabled": False}}}
    with pytest.raises(helm_python.HelmError, match="canary runs beside the stable version"):
        render(sqlite)


def test_rollouts_need_the_series_the_analysis_reads() -> None:
    with pytest.raises(helm_python.HelmError, match="enable monitoring.serviceMonitors"):
        render({"rollouts": {"enabled": True}})
