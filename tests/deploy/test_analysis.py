"""Every canary check on synthetic series, through promtool: it passes on a healthy canary, fails
on a failing one, and judges nothing below its minimum of traffic. (The ops check proves the same
on live traffic for the faults one machine can cause.)

Each analysis query becomes two alert rules, `(query) <= threshold` (the success condition) and
`(query) > threshold` (the failure condition); which of them fires is Argo Rollouts' verdict.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.chart import render_set
from tests.deploy.monitoring import Measurement, analysis_measurements

HASH = "7d9c5b8f4"
LABELS = f'namespace="genai",rollouts_pod_template_hash="{HASH}"'
OTHER = 'namespace="genai",rollouts_pod_template_hash="stable1234"'  # the stable pods: never counted
BOUNDS = ("0.1", "1.0", "5.0", "10.0", "30.0", "+Inf")
PER_MINUTE = 60  # requests a minute: 300 in the 5-minute window, past minRequests (50)
QUIET = 5  # requests a minute: 25 in the window, below it


def _counter(series: str, per_minute: int) -> dict[str, str]:
    return {"series": series, "values": f"0+{per_minute}x20"}


def _histogram(metric: str, labels: str, per_minute: int, upto: str | None) -> list[dict[str, str]]:
    """A histogram whose observations all fall at or below `upto` (None: none observed)."""
    found = []
    for bound in BOUNDS:
        inside = upto is not None and (bound == "+Inf" or float(bound) >= float(upto))
        found.append(_counter(f'{metric}_bucket{{{labels},le="{bound}"}}', per_minute if inside else 0))
    found.append(_counter(f"{metric}_count{{{labels}}}", per_minute if upto is not None else 0))
    return found


def _series(service: str, check: str, state: str) -> list[dict[str, str]]:
    """Input series of one canary in `state` (healthy | failing | quiet), plus a failing stable version."""
    rate = QUIET if state == "quiet" else PER_MINUTE
    bad = state == "failing"
    if service != "gateway":
        metric = f"{service}_grpc_request_duration_seconds"
        ok, failed = f'{LABELS},method="Search",code="OK"', f'{LABELS},method="Search",code="INTERNAL"'
        stable = _histogram(metric, f'{OTHER},method="Search",code="INTERNAL"', PER_MINUTE, "0.1")
        return (_histogram(metric, ok, 0 if bad else rate, None if bad else "0.1")
                + _histogram(metric, failed, rate if bad else 0, "0.1" if bad else None) + stable)
    if check in ("errors", "latency"):
        metric = "gateway_http_request_duration_seconds"
        route = f'{LABELS},route="/v1/chat/completions",method="POST"'
        stable = _histogram(metric, f'{OTHER},route="/v1/search",method="POST",status_class="5xx"', PER_MINUTE, "0.1")
        return (_histogram(metric, f'{route},status_class="2xx"', 0 if bad else rate, None if bad else "0.1")
                + _histogram(metric, f'{route},status_class="5xx"', rate if bad else 0, "0.1" if bad else None)
                + stable)
    if check == "time-to-first-token":
        return (_histogram("gateway_llm_time_to_first_token_seconds", LABELS, 0 if bad else rate,
                           None if bad else "0.1")
                + [_counter(f'gateway_llm_requests_total{{{LABELS},stream="true",outcome="ok"}}', 0 if bad else rate),
                   _counter(f'gateway_llm_requests_total{{{LABELS},stream="true",outcome="failed"}}',
                            rate if bad else 0)])
    return [  # answers-without-sources
        _counter(f'gateway_chat_requests_total{{{LABELS},mode="llm",outcome="ok"}}', 0 if bad else rate),
        _counter(f'gateway_chat_requests_total{{{LABELS},mode="llm",outcome="upstream_error"}}', rate if bad else 0),
        _counter(f'gateway_chat_answer_sources_count{{{LABELS},mode="llm"}}', 0 if bad else rate),
        _counter(f'gateway_chat_answers_without_sources_total{{{LABELS},mode="llm"}}', 0),
    ]


def _rules(measurement: Measurement) -> list[dict[str, Any]]:
    threshold = re.search(r"<= ([0-9.]+)$", measurement.success)
    assert threshold, measurement.success
    name = re.sub(r"[^A-Za-z0-9]", "", measurement.template.title())
    return [{"alert": f"{name}Passes", "expr": f"({measurement.query}) <= {threshold.group(1)}"},
            {"alert": f"{name}Fails", "expr": f"({measurement.query}) > {threshold.group(1)}"}]


def test_every_check_passes_fails_and_waits_for_traffic_as_it_should(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian's prometheus package) is missing: `make services` installs it"
    measurements = analysis_measurements(render_set("monitoring"), HASH)
    assert len(measurements) == 8
    rules, tests = [], []
    for m in measurements:
        passes, fails = (r["alert"] for r in _rules(m))
        rules += _rules(m)
        service, check = m.template.split("-", 2)[1:]
        for state, firing in (("healthy", passes), ("failing", fails), ("quiet", None)):
            tests.append({
                "name": f"{m.template} {state}", "interval": "1m", "input_series": _series(service, check, state),
                "alert_rule_test": [{"eval_time": "10m", "alertname": alert,
                                     "exp_alerts": [{"exp_labels": {}}] if alert == firing else []}
                                    for alert in (passes, fails)],
            })
    (tmp_path / "analysis-rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "analysis", "rules": rules}]}))
    (tmp_path / "analysis-test.yaml").write_text(yaml.safe_dump(
        {"rule_files": ["analysis-rules.yaml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    done = subprocess.run([promtool, "test", "rules", "analysis-test.yaml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr
