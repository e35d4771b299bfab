"""The Grafana dashboards: current with their generator, loaded by the sidecar, reading Prometheus
only through the ${datasource} variable, and breaking our services down by version."""

from __future__ import annotations

import re

import promql_parser

from scripts import dashboards as generator
from tests.deploy.chart import CHART, render, render_set
from tests.deploy.monitoring import dashboard_queries, dashboards, fill_dashboard_variables, metric_names, walk_json

DASHBOARDS_ON = {"monitoring": {"dashboards": {"enabled": True}}}
EXPECTED = {
    "genai-overview": "genai / overview",
    "genai-llm": "genai / LLM traffic",
    "genai-rag": "genai / RAG and ingest",
    "genai-jobs": "genai / jobs and GPU",
    "genai-platform": "genai / platform health",
}
# Series of our own services (the ones that carry our version).
OUR_PREFIXES = ("gateway_", "scraper_", "retriever_", "ingest_", "imagegen_")
# Counts of the gateway's database: every replica of every version reports the same numbers.
DATABASE_WIDE = {"gateway_documents", "gateway_jobs", "gateway_document_oldest_age_seconds",
                 "gateway_job_oldest_age_seconds"}


def test_the_committed_json_is_what_the_generator_writes() -> None:
    committed = {path.name: path.read_text() for path in (CHART / "dashboards").glob("*.json")}
    assert committed == generator.rendered(), "run `make dashboards` and commit helm/genai/dashboards/"


def test_the_five_dashboards_reach_grafana_through_the_sidecar_label() -> None:
    assert not dashboards(render())
    objects = render({"monitoring": {"dashboards": {"enabled": True, "annotations": {"grafana_folder": "genai"},
                                                   "namespace": "monitoring"}}})
    found = dashboards(objects)
    assert {uid: d["title"] for uid, d in found.items()} == EXPECTED
    for config in (o for o in objects if o["kind"] == "ConfigMap" and "-dashboard-" in o["metadata"]["name"]):
        assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config["metadata"]["annotations"] == {"grafana_folder": "genai"}
        assert config["metadata"]["namespace"] == "monitoring"


def test_prometheus_is_only_reached_through_the_datasource_variable() -> None:
    for uid, dashboard in dashboards(render(DASHBOARDS_ON)).items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        refs = [ref for ref in walk_json(dashboard, "datasource") if isinstance(ref, dict)]
        assert refs and all(ref == {"type": "prometheus", "uid": "${datasource}"} for ref in refs), uid
        for panel in dashboard["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (uid, panel["title"])
            assert panel["targets"], (uid, panel["title"])


def test_every_query_parses_and_is_scoped_to_the_namespace_variable() -> None:
    objects = render(DASHBOARDS_ON)
    for query in dashboard_queries(objects, namespace="a-namespace"):
        promql_parser.parse(query.expr)  # raises on a malformed query
        assert 'namespace="a-namespace"' in query.expr, query.source


def test_every_panel_on_our_services_breaks_down_by_version() -> None:
    for uid, dashboard in dashboards(render(DASHBOARDS_ON)).items():
        assert any(v["name"] == "version" for v in dashboard["templating"]["list"]), uid
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                ours = {m for m in metric_names(fill_dashboard_variables(target["expr"])) if m.startswith(OUR_PREFIXES)}
                if not ours or ours <= DATABASE_WIDE:
                    continue
                groupings = re.findall(r"by \(([^)]*)\)", target["expr"])
                assert any("app_kubernetes_io_version" in g for g in groupings), (uid, panel["title"])
                assert '=~"$version"' in target["expr"], (uid, panel["title"])


def test_every_values_set_with_dashboards_renders_the_same_five() -> None:
    for value_set in ("monitoring", "gpu"):
        assert set(dashboards(render_set(value_set))) == set(EXPECTED)


def test_panels_do_not_overlap() -> None:
    for uid, dashboard in dashboards(render(DASHBOARDS_ON)).items():
        cells: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                    for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not cells & mine and grid["x"] + grid["w"] <= 24, (uid, panel["title"])
            cells |= mine
