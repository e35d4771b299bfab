"""The PrometheusRules: promtool accepts them, every alert has a promtool test where it fires and
one where it must not, and every alert tells a person what happened and what to do."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from tests.deploy.chart import render, render_set
from tests.deploy.monitoring import alerts, rule_groups

PROMTOOL_TESTS = Path(__file__).parent / "promtool" / "alerts-test.yaml"
RULES_ON = {"monitoring": {"rules": {"enabled": True}}}


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool (Debian's prometheus package) is missing: `make services` installs it"
    return found


def _write_rules(path: Path, objects: list[dict[str, Any]], *, annotations: bool = True) -> None:
    groups = rule_groups(objects)
    if not annotations:
        groups = [{**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
                  for g in groups]
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))


def _run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run([_promtool(), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_rules_are_off_by_default_and_on_when_asked() -> None:
    assert not rule_groups(render())
    assert {g["name"] for g in rule_groups(render(RULES_ON))} == {"genai-slo", "genai-alerts"}


@pytest.mark.parametrize("value_set", ["monitoring", "gpu"])
def test_promtool_accepts_the_rules_of_every_set_that_renders_them(value_set: str, tmp_path: Path) -> None:
    _write_rules(tmp_path / "rules.yaml", render_set(value_set))
    assert "SUCCESS" in _run("check", "rules", "rules.yaml", cwd=tmp_path)


def test_every_alert_fires_and_stays_quiet_in_the_promtool_tests(tmp_path: Path) -> None:
    _write_rules(tmp_path / "rules.yaml", render(RULES_ON), annotations=False)
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)
    _run("test", "rules", PROMTOOL_TESTS.name, cwd=tmp_path)


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases = yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    for alert in alerts(render(RULES_ON)):
        name = alert["alert"]
        fires = [c for c in checks if c["alertname"] == name and c.get("exp_alerts")]
        quiet = [c for c in checks if c["alertname"] == name and not c.get("exp_alerts")]
        assert fires and quiet, f"{name}: {len(fires)} firing and {len(quiet)} quiet promtool cases"


def _output_labels(expr: str, recorded: dict[str, str]) -> set[str]:
    """Labels an alert's series keep: those of its outermost aggregation (left of and/or/unless),
    through recording rules."""
    node = promql_parser.parse(expr)
    while True:
        if isinstance(node, promql_parser.VectorSelector) and node.name in recorded:
            node = promql_parser.parse(recorded[node.name])
            continue
        if isinstance(node, promql_parser.ParenExpr):
            node = node.expr
        elif isinstance(node, promql_parser.BinaryExpr):
            node = node.rhs if isinstance(node.lhs, promql_parser.NumberLiteral) else node.lhs
        elif isinstance(node, promql_parser.Call) and node.func.name == "histogram_quantile":
            node = node.args[1]
        elif isinstance(node, promql_parser.AggregateExpr):
            assert node.modifier is not None and "By" in str(node.modifier.type), f"aggregate without by: {expr}"
            return set(node.modifier.labels) - {"le"}
        else:
            raise AssertionError(f"cannot tell the output labels of {expr}")


def test_every_alert_says_what_happened_and_what_to_do() -> None:
    objects = render(RULES_ON)
    recorded = {r["record"]: r["expr"] for g in rule_groups(objects) for r in g["rules"] if "record" in r}
    for alert in alerts(objects):
        name, notes = alert["alert"], alert.get("annotations", {})
        assert {"summary", "description", "runbook"} <= set(notes), name
        assert len(notes["runbook"]) > 80, f"{name}: the runbook says too little"
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        kept = _output_labels(alert["expr"], recorded)
        used = {label for text in notes.values() for label in re.findall(r"\$labels\.(\w+)", text)}
        assert used <= kept, f"{name}: annotations use {used - kept}, which the expression aggregates away"
        assert "namespace" in kept, f"{name}: alerts name the release's namespace"


def test_every_selector_of_the_rules_is_scoped_to_the_release() -> None:
    objects = render(RULES_ON)
    for group in rule_groups(objects):
        for rule in group["rules"]:
            for selector in re.findall(r"[a-z_:]+\{[^}]*\}", rule["expr"]):
                assert 'namespace="genai"' in selector, f"{rule.get('alert') or rule['record']}: {selector}"
