"""Every values set renders, passes strict lint, and every object validates strictly against the
pinned Kubernetes schemas (1.33 and the newest kubernetes-validate ships) or its CRD's schema."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.chart import CHART, SHARED_K8S, VALUE_SETS, render, render_set, values_of

KUBE_VERSIONS = ("1.33.0", kubernetes_validate.latest_version())
CRD_GROUPS = ("keda.sh", "gateway.networking.k8s.io", "monitoring.coreos.com", "argoproj.io")
WARNING = 2  # helm lint severities: 1 info, 2 warning, 3 error


def test_the_expected_values_sets_exist() -> None:
    assert {"default", "local", "gpu", "external", "keda-off"} <= set(VALUE_SETS)


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_strict_lint_passes(value_set: str, kube_version: str) -> None:
    report = helm_python.lint(CHART, values_of(value_set), strict=True, namespace="genai", kube_version=kube_version)
    problems = [m for m in report["messages"] if m["severity"] >= WARNING]
    assert not report["errors"] and not problems, (report["errors"], problems)


def _strict(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields (as the API server prunes them), like `--strict`."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@functools.cache
def _crd_validator(group: str, kind: str, version: str) -> jsonschema.Draft7Validator:
    path = SHARED_K8S / "crd-schemas" / group / f"{kind.lower()}_{version}.json"
    assert path.is_file(), f"no CRD schema for {group}/{version} {kind} in {path.parent}"
    return jsonschema.Draft7Validator(_strict(json.loads(path.read_text())))


def _unique_objects() -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for value_set in VALUE_SETS:
        for obj in render_set(value_set):
            seen.setdefault(json.dumps(obj, sort_keys=True), obj)
    return list(seen.values())


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_object_of_every_set_validates_strictly(kube_version: str) -> None:
    failures = []
    for obj in _unique_objects():
        group, _, version = obj["apiVersion"].rpartition("/")
        where = f"{obj['kind']} {obj['metadata']['name']}"
        if group in CRD_GROUPS:
            errors = [e.message for e in _crd_validator(group, obj["kind"], version).iter_errors(obj)]
            failures += [f"{where}: {message}" for message in errors]
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{where}: {exc}")
    assert not failures, "\n".join(failures)


def test_a_misspelled_value_fails_the_install() -> None:
    with pytest.raises(helm_python.HelmError, match="replica"):
        render({"gateway": {"replica": 3}})
    with pytest.raises(helm_python.HelmError, match="want string"):
        render({"gateway": {"env": {"UPLOAD_MAX_BYTES": 5}}})  # a number would reach the pod as 5.24288e+07


def _paths(tree: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if not isinstance(tree, dict) or not tree:
        return {prefix}
    return {path for key, value in tree.items() for path in _paths(value, (*prefix, key))}


def _schema_paths(schema: dict[str, Any], root: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if "$ref" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[-1]]
    properties = schema.get("properties")
    if not properties or schema.get("additionalProperties") is not False:
        return {prefix}
    return {path for key, sub in properties.items() for path in _schema_paths(sub, root, (*prefix, key))}


def test_the_values_schema_and_values_yaml_describe_the_same_keys() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    in_schema = _schema_paths(schema, schema)
    in_values = _paths(values)
    # A fixed-shape block of the schema is a block of values.yaml and the other way round; open
    # maps (env, labels, CIDRs) end where the schema stops naming keys.
    covered = {path for path in in_values if any(path[:len(s)] == s for s in in_schema)}
    assert covered == in_values, f"values.yaml keys the schema does not know: {sorted(in_values - covered)}"
    missing = {s for s in in_schema if not any(v[:len(s)] == s for v in in_values)}
    assert not missing, f"schema keys values.yaml does not set (with a comment): {sorted(missing)}"


def test_values_files_are_maps_not_lists() -> None:
    """Lists cannot be merged by -f/--set; the chart's values are maps (name -> item)."""
    for path in [CHART / "values.yaml", *sorted((CHART / "ci").glob("*.yaml"))]:
        lists = [p for p in _list_paths(yaml.safe_load(path.read_text()) or {}) if p[-1] not in _LIST_LEAVES]
        assert not lists, f"{Path(path).name}: lists at {lists}"


# Leaves that Kubernetes itself defines as a list of scalars.
_LIST_LEAVES = {"drop"}


def _list_paths(tree: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(tree, list):
        return [prefix]
    if isinstance(tree, dict):
        return [p for key, value in tree.items() for p in _list_paths(value, (*prefix, key))]
    return []
