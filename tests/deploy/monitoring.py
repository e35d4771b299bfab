"""The PromQL the chart ships, read out of a render: dashboard panels, recording rules, alerts and
canary analysis queries, each with its variables or arguments filled in; the vector selectors in
each; and Argo Rollouts' verdict on a measurement."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import promql_parser

from tests.deploy.chart import NAMESPACE

# The Argo Rollouts argument every analysis query takes.
CANARY_HASH_ARG = "{{args.canary-hash}}"


@dataclass(frozen=True)
class Query:
    source: str  # where it comes from, for messages: "dashboard genai-overview: Requests per second"
    expr: str


def dashboards(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON, from the rendered ConfigMaps."""
    found = {}
    for obj in objects:
        if obj["kind"] == "ConfigMap" and "-dashboard-" in obj["metadata"]["name"]:
            for text in obj["data"].values():
                dashboard = json.loads(text)
                found[dashboard["uid"]] = dashboard
    return found


def fill_dashboard_variables(expr: str, *, namespace: str = NAMESPACE, rate_interval: str = "1m") -> str:
    """A panel's query as Grafana sends it with this namespace, every version, and a rate interval."""
    return (expr.replace("$__rate_interval", rate_interval).replace("$namespace", namespace)
            .replace("$version", ".*"))


def dashboard_queries(objects: list[dict[str, Any]], **fill: str) -> list[Query]:
    return [Query(f"dashboard {uid}: {panel['title']}", fill_dashboard_variables(target["expr"], **fill))
            for uid, dashboard in sorted(dashboards(objects).items())
            for panel in dashboard["panels"] for target in panel["targets"]]


def rule_groups(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [group for obj in objects if obj["kind"] == "PrometheusRule" for group in obj["spec"]["groups"]]


def rule_queries(objects: list[dict[str, Any]]) -> list[Query]:
    return [Query(f"{'alert' if 'alert' in rule else 'recording rule'} {rule.get('alert') or rule['record']}",
                  rule["expr"])
            for group in rule_groups(objects) for rule in group["rules"]]


def alerts(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in rule_groups(objects) for rule in group["rules"] if "alert" in rule]


def analysis_templates(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "AnalysisTemplate"}


@dataclass(frozen=True)
class Measurement:
    """One metric of an AnalysisTemplate with its arguments filled in."""

    template: str
    metric: str
    query: str
    success: str
    failure: str


def analysis_measurements(objects: list[dict[str, Any]], canary_hash: str) -> list[Measurement]:
    found = []
    for name, template in sorted(analysis_templates(objects).items()):
        for metric in template["spec"]["metrics"]:
            query = metric["provider"]["prometheus"]["query"].replace(CANARY_HASH_ARG, canary_hash)
            assert "{{" not in query, f"{name}: an argument is left unfilled in {query}"
            found.append(Measurement(name, metric["name"], query, metric["successCondition"],
                                     metric["failureCondition"]))
    return found


def analysis_queries(objects: list[dict[str, Any]], canary_hash: str) -> list[Query]:
    return [Query(f"analysis {m.template}", m.query) for m in analysis_measurements(objects, canary_hash)]


def every_query(objects: list[dict[str, Any]], canary_hash: str, **fill: str) -> list[Query]:
    return [*dashboard_queries(objects, **fill), *rule_queries(objects), *analysis_queries(objects, canary_hash)]


_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


def vector_selectors(expr: str) -> list[str]:
    """Every vector selector of a query, with its label matchers, as PromQL (ranges and offsets dropped)."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = [f"{m.name}{_OPS[str(m.op)]}{json.dumps(m.value)}" for m in node.matchers.matchers]
            found.append(f"{node.name or ''}{{{','.join(matchers)}}}")

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def metric_names(expr: str) -> set[str]:
    return {selector.split("{", 1)[0] for selector in vector_selectors(expr)}


# --- Argo Rollouts' verdict ---------------------------------------------------------------------

# The conditions the chart writes: `len(result) == 1 && result[0] <= 0.02` and the like.
_CONDITION = re.compile(r"^len\(result\) == 1 && result\[0\] (<=|>) ([0-9.]+)$")


def _holds(condition: str, result: list[float]) -> bool:
    """An analysis condition on a Prometheus vector result, as Argo Rollouts' expr evaluates it
    (`&&` short-circuits; any comparison with NaN is false)."""
    match = _CONDITION.match(condition)
    assert match, f"not a condition of the form the chart writes: {condition!r}"
    if len(result) != 1:
        return False
    value, threshold = result[0], float(match.group(2))
    if math.isnan(value):
        return False
    return value <= threshold if match.group(1) == "<=" else value > threshold


def verdict(measurement: Measurement, result: list[float]) -> str:
    """Successful, Failed or Inconclusive, as Argo Rollouts assesses one measurement."""
    failed, succeeded = _holds(measurement.failure, result), _holds(measurement.success, result)
    if failed:
        return "Failed"
    return "Successful" if succeeded else "Inconclusive"


def walk_json(tree: Any, key: str) -> Iterator[Any]:
    """Every value stored under `key` anywhere in a JSON tree."""
    if isinstance(tree, dict):
        for name, value in tree.items():
            if name == key:
                yield value
            yield from walk_json(value, key)
    elif isinstance(tree, list):
        for item in tree:
            yield from walk_json(item, key)
