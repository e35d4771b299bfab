"""skaffold.yaml: valid against its schema in every profile, one image per service, each deployed
with its own artifact's repository and tag."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.chart import ROOT, SERVICES, SHARED_K8S, container, named, render, values_of

CONFIG = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
SCHEMA = json.loads((SHARED_K8S / "skaffold-schema" / "v4beta14.json").read_text())
PROFILES = {p["name"]: p for p in CONFIG["profiles"]}


def _patched(config: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
    """The config with a profile's JSON patches applied (add and replace, as skaffold does)."""
    result = copy.deepcopy(config)
    for patch in profile.get("patches", []):
        *parents, last = patch["path"].strip("/").split("/")
        node: Any = result
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) else last
        if patch["op"] == "replace":
            exists = key < len(node) if isinstance(node, list) else key in node
            assert exists, f"{profile['name']}: {patch['path']} replaces nothing"
        assert patch["op"] in ("add", "replace"), patch
        node[key] = patch["value"]
    return result


@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_the_config_matches_the_skaffold_schema(profile: str | None) -> None:
    config = CONFIG if profile is None else _patched(CONFIG, PROFILES[profile])
    jsonschema.validate(config, SCHEMA)
    for release in config["deploy"]["helm"]["releases"]:
        for path in release.get("valuesFiles", []):
            assert (ROOT / path).is_file(), path


def test_one_artifact_per_service_built_from_its_dockerfile() -> None:
    artifacts = {a["image"].rsplit("/", 1)[-1]: a for a in CONFIG["build"]["artifacts"]}
    assert set(artifacts) == set(SERVICES)
    for service, artifact in artifacts.items():
        assert artifact["docker"]["dockerfile"] == f"services/{service}/Dockerfile"
        assert artifact["context"] == "."


def test_each_service_is_deployed_with_its_own_artifact() -> None:
    templates = CONFIG["deploy"]["helm"]["releases"][0]["setValueTemplates"]
    values: dict[str, Any] = {}
    for artifact in CONFIG["build"]["artifacts"]:
        service = artifact["image"].rsplit("/", 1)[-1]
        key = re.sub(r"[^A-Za-z0-9]", "_", artifact["image"])
        assert templates[f"{service}.image.repository"] == f"{{{{.IMAGE_REPO_{key}}}}}"
        assert templates[f"{service}.image.tag"] == f"{{{{.IMAGE_TAG_{key}}}}}"
        values[service] = {"image": {"repository": f"registry.test/{service}", "tag": f"abc-{service}"}}
    objects = render(values)  # the values skaffold sets exist in the chart
    for service in SERVICES:
        assert container(objects, service)["image"] == f"registry.test/{service}:abc-{service}"


def test_the_gpu_profile_builds_cuda_torch_and_pushes() -> None:
    config = _patched(CONFIG, PROFILES["gpu"])
    variants = {a["image"].rsplit("/", 1)[-1]: a["docker"].get("buildArgs", {}).get("TORCH_VARIANT")
                for a in config["build"]["artifacts"]}
    assert variants["retriever"].startswith("cu") and variants["imagegen"].startswith("cu")
    assert config["build"]["local"]["push"] is True


def test_the_local_profile_forwards_the_gateway_it_deploys() -> None:
    config = _patched(CONFIG, PROFILES["local"])
    (values_file,) = config["deploy"]["helm"]["releases"][0]["valuesFiles"]
    objects = render(values_of(values_file.rsplit("/", 1)[-1].removesuffix("-values.yaml")))
    (forward,) = PROFILES["local"]["portForward"]
    service = named(objects, "Service")[forward["resourceName"]]
    assert forward["port"] in {p["port"] for p in service["spec"]["ports"]}
    assert forward["namespace"] == config["deploy"]["helm"]["releases"][0]["namespace"]
