"""Rendering the chart the way `helm install` does, and reading what it rendered."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "genai"
SHARED_K8S = ROOT.parent / "shared" / "k8s"
NAMESPACE = "genai"
RELEASE = "genai"

# The values sets CI renders (helm/genai/ci/<name>-values.yaml).
VALUE_SETS = sorted(path.name.removesuffix("-values.yaml") for path in (CHART / "ci").glob("*-values.yaml"))
SERVICES = ("gateway", "scraper", "retriever", "ingest", "imagegen")
# A stateless service is a Deployment, or an Argo Rollout when it is released as a canary.
DEPLOYMENT_KINDS = ("Deployment", "Rollout")
WORKLOAD_KINDS = (*DEPLOYMENT_KINDS, "StatefulSet", "Job")


def values_of(value_set: str) -> dict[str, Any]:
    return yaml.safe_load((CHART / "ci" / f"{value_set}-values.yaml").read_text()) or {}


def render(values: dict[str, Any] | None = None, *, release: str = RELEASE) -> list[dict[str, Any]]:
    """The objects `helm install <release> helm/genai -n genai` would create (NOTES.txt left out)."""
    return _render(json.dumps(values or {}, sort_keys=True), release)


@functools.lru_cache(maxsize=64)
def _render(values_json: str, release: str) -> list[dict[str, Any]]:
    files = helm_python.Chart.load(CHART).render(json.loads(values_json), name=release, namespace=NAMESPACE,
                                                 is_install=True)
    return [doc for path, text in sorted(files.items()) if path.endswith(".yaml")
            for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc]


def notes(values: dict[str, Any] | None = None) -> str:
    """What `helm install` prints after installing (templates/NOTES.txt)."""
    files = helm_python.Chart.load(CHART).render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for path, text in files.items() if path.endswith("/NOTES.txt"))


def render_set(value_set: str) -> list[dict[str, Any]]:
    return render(values_of(value_set))


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def named(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """name -> the Deployment or Rollout of every stateless workload."""
    return {o["metadata"]["name"]: o for o in objects if o["kind"] in DEPLOYMENT_KINDS}


def workloads(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (o for o in objects if o["kind"] in WORKLOAD_KINDS)


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def component(obj: dict[str, Any]) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


def deployment(objects: list[dict[str, Any]], service: str) -> dict[str, Any]:
    found = [o for name, o in deployments(objects).items() if name == f"{RELEASE}-{service}"]
    assert len(found) == 1, f"expected one Deployment or Rollout {RELEASE}-{service}, found {len(found)}"
    return found[0]


def container(objects: list[dict[str, Any]], service: str) -> dict[str, Any]:
    return pod_spec(deployment(objects, service))["containers"][0]


def env_of(container_spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> the env entry ({"value": ...} or {"valueFrom": ...})."""
    entries = container_spec.get("env", [])
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate env names in {container_spec['name']}: {names}"
    return {e["name"]: e for e in entries}


def uses_gpu(container_spec: dict[str, Any]) -> bool:
    resources = container_spec.get("resources", {})
    return any("nvidia.com/gpu" in resources.get(part, {}) for part in ("requests", "limits"))
