"""checkov finds nothing in any rendered values set, apart from the documented skips
(.checkov.yaml for the chart, a checkov.io/skip annotation where one object needs one)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.deploy.chart import ROOT, VALUE_SETS, render_set

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def test_checkov_passes_every_values_set(tmp_path: Path) -> None:
    assert CHECKOV.is_file(), "checkov lives in its own venv: run `make checkov` (make test does)"
    for value_set in VALUE_SETS:
        (tmp_path / f"{value_set}.yaml").write_text(yaml.safe_dump_all(render_set(value_set)))
    done = subprocess.run(
        [str(CHECKOV), "-d", str(tmp_path), "--config-file", str(ROOT / ".checkov.yaml"), "--skip-download",
         "--compact", "--output", "json"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: checks failed (listed below)
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}"
              for r in reports for c in r["results"]["failed_checks"]]
    assert not failed, "\n".join(failed)
    summary = reports[0]["summary"]
    assert summary["parsing_errors"] == 0 and summary["resource_count"] > 100 and summary["passed"] > 1000, summary
    skipped = {(c["check_id"], c["resource"].split(".")[-1].removeprefix("genai-")) for r in reports
               for c in r["results"]["skipped_checks"]}
    assert skipped == {("CKV_K8S_40", name) for name in ("rabbitmq", "qdrant", "postgresql")}, skipped
