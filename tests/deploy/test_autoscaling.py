"""Each workload scales on the signal that says it is behind, with whatever the cluster has."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.chart import (
    CHART,
    RELEASE,
    VALUE_SETS,
    component,
    deployments,
    named,
    render,
    render_set,
    uses_gpu,
)

CPU_SERVICES = {"gateway", "scraper", "retriever"}


def _scalers(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {component(o): o for o in objects if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")}


def _metric(hpa: dict[str, Any]) -> dict[str, Any]:
    (metric,) = hpa["spec"]["metrics"]
    return metric


def test_with_keda_the_workers_scale_on_their_queues_and_vllm_on_waiting_requests() -> None:
    objects = render_set("default")
    scalers = _scalers(objects)
    for service in CPU_SERVICES:
        hpa = scalers[service]
        assert hpa["kind"] == "HorizontalPodAutoscaler"
        assert _metric(hpa)["resource"]["name"] == "cpu"
        assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] > 0
    ingest = scalers["ingest"]["spec"]["triggers"][0]
    assert ingest["type"] == "rabbitmq"
    # protocol http reads the management API, whose count includes unacked (in-progress) messages.
    assert ingest["metadata"] == {"protocol": "http", "mode": "QueueLength", "value": "8",
                                  "queueName": "ingest.document-uploaded", "vhostName": "/"}
    imagegen = scalers["imagegen"]["spec"]["triggers"][0]
    assert (imagegen["metadata"]["queueName"], imagegen["metadata"]["value"]) == ("imagegen.image-jobs", "1")
    vllm = scalers["vllm"]["spec"]
    assert vllm["minReplicaCount"] >= 1  # the gateway needs an LLM
    assert "vllm:num_requests_waiting" in vllm["triggers"][0]["metadata"]["query"]
    assert 'model_name="qwen2.5-7b-instruct"' in vllm["triggers"][0]["metadata"]["query"]


def test_keda_reads_the_queue_with_the_brokers_management_credentials() -> None:
    for value_set, secret, key in (("default", f"{RELEASE}-rabbitmq", "RABBITMQ_MANAGEMENT_URL"),
                                   ("external", "genai-broker", "RABBITMQ_MANAGEMENT_URL")):
        objects = render_set(value_set)
        auth = named([o for o in objects if o["kind"] == "TriggerAuthentication"], "TriggerAuthentication")
        scaled = [o for o in objects if o["kind"] == "ScaledObject" and o["spec"]["triggers"][0]["type"] == "rabbitmq"]
        assert {component(o) for o in scaled} == {"ingest", "imagegen"}
        for obj in scaled:
            ref = auth[obj["spec"]["triggers"][0]["authenticationRef"]["name"]]["spec"]["secretTargetRef"]
            assert ref == [{"parameter": "host", "name": secret, "key": key}]


def test_the_ingest_target_is_its_own_setting_not_its_prefetch() -> None:
    scalers = _scalers(render({"ingest": {"autoscaling": {"messagesPerReplica": 3}, "env": {"INGEST_PREFETCH": "64"}}}))
    assert scalers["ingest"]["spec"]["triggers"][0]["metadata"]["value"] == "3"


def test_without_keda_gpu_workloads_scale_on_external_metrics_from_prometheus_adapter() -> None:
    scalers = _scalers(render_set("keda-off"))
    assert not [s for s in scalers.values() if s["kind"] == "ScaledObject"]
    assert _metric(scalers["ingest"])["resource"]["name"] == "cpu"
    adapter = yaml.safe_load((CHART / "examples" / "prometheus-adapter-values.yaml").read_text())
    served = {rule["name"]["as"] for rule in adapter["rules"]["external"]}
    for service, labels, target in (("imagegen", {"queue": "imagegen.image-jobs"}, "1"),
                                    ("vllm", {"model_name": "qwen2.5-7b-instruct"}, "5")):
        external = _metric(scalers[service])["external"]
        assert external["metric"]["name"] in served, f"{service}: the example adapter rules do not serve it"
        assert external["metric"]["selector"]["matchLabels"] == labels
        assert external["target"] == {"type": "AverageValue", "averageValue": target}


def test_without_keda_or_an_adapter_gpu_workloads_keep_fixed_replicas() -> None:
    objects = render({"autoscaling": {"keda": {"enabled": False}}})
    scalers = _scalers(objects)
    assert set(scalers) == CPU_SERVICES | {"ingest"}
    workloads = deployments(objects)
    assert workloads[f"{RELEASE}-vllm"]["spec"]["replicas"] == 1
    assert workloads[f"{RELEASE}-imagegen"]["spec"]["replicas"] == 1


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_no_cpu_autoscaler_ever_targets_a_gpu_workload(value_set: str) -> None:
    objects = render_set(value_set)
    workloads = deployments(objects)
    for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
        target = workloads[hpa["spec"]["scaleTargetRef"]["name"]]
        on_gpu = uses_gpu(target["spec"]["template"]["spec"]["containers"][0])
        on_gpu = on_gpu or component(target) in ("imagegen", "vllm")
        if on_gpu:
            assert all(m["type"] != "Resource" for m in hpa["spec"]["metrics"]), hpa["metadata"]["name"]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_scaler_targets_a_rendered_deployment(value_set: str) -> None:
    objects = render_set(value_set)
    workloads = deployments(objects)
    for scaler in _scalers(objects).values():
        assert scaler["spec"]["scaleTargetRef"]["name"] in workloads
