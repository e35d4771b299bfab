"""The Helm chart renders to valid Kubernetes objects that follow our rules; skaffold.yaml is valid."""

from __future__ import annotations

import json
from pathlib import Path

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "k8s"
KUBE_VERSION = "1.33"


def render(values: dict | None = None) -> list[dict]:
    chart = helm_python.Chart.load(ROOT / "helm" / "genai")
    files = chart.render(values or {}, name="genai", namespace="genai", is_install=True)
    return [doc for text in files.values() for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return render()


def test_every_object_validates_strictly_against_kubernetes(objects: list[dict]) -> None:
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_one_workload_per_service_with_probes_limits_and_restricted_security(objects: list[dict]) -> None:
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    assert set(deployments) == {f"genai-{s}" for s in ("gateway", "scraper", "retriever", "ingest", "imagegen")}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert {"readinessProbe", "livenessProbe", "startupProbe"} <= container.keys(), name
            assert "memory" in container["resources"]["limits"], name
            assert not container["image"].endswith(":latest"), name


def test_grpc_services_are_probed_over_grpc_health(objects: list[dict]) -> None:
    for name in ("genai-scraper", "genai-retriever"):
        deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert "grpc" in container["readinessProbe"], name


def test_imagegen_lands_on_the_gpu_pool(objects: list[dict]) -> None:
    deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "genai-imagegen")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] and pod["tolerations"]


def test_a_service_can_be_switched_off() -> None:
    names = {o["metadata"]["name"] for o in render({"imagegen": {"enabled": False}})}
    assert "genai-imagegen" not in names and "genai-gateway" in names


def test_secrets_come_from_secret_refs_not_values(objects: list[dict]) -> None:
    gateway = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "genai-gateway")
    env = {e["name"]: e for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}
    for secret in ("AMQP_URL", "DATABASE_URL", "GATEWAY_API_KEYS"):
        assert "secretKeyRef" in env[secret]["valueFrom"], secret


@pytest.mark.skipif(not (SHARED / "skaffold-schema").is_dir(),
                    reason="shared k8s schemas not checked out beside the repo")
def test_skaffold_config_matches_its_schema() -> None:
    schema = json.loads((SHARED / "skaffold-schema" / "v4beta14.json").read_text())
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    jsonschema.validate(config, schema)
    images = {a["image"].rsplit("/", 1)[-1] for a in config["build"]["artifacts"]}
    assert images == {"gateway", "scraper", "retriever", "ingest", "imagegen"}
    for artifact in config["build"]["artifacts"]:
        assert (ROOT / artifact["docker"]["dockerfile"]).is_file(), artifact["image"]


def test_worker_ops_endpoints_listen_beyond_loopback_in_pods(objects: list[dict]) -> None:
    for name, var in (("genai-ingest", "INGEST_METRICS_HOST"), ("genai-imagegen", "IMAGEGEN_METRICS_HOST")):
        deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name)
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env[var] == "0.0.0.0", name
