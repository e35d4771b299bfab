"""A real Prometheus server (Debian's package) on 127.0.0.1, for the ops check: started with a
generated configuration and the chart's rules, queried through its HTTP API, stopped afterwards."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from tests.support.procs import free_port

READY_TIMEOUT = 60.0


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "Prometheus is missing: `make services` installs Debian's prometheus package"
    return found


class PrometheusServer:
    """`with PrometheusServer(workdir, scrape_configs, rule_groups) as prom: prom.query(...)`."""

    def __init__(self, workdir: Path, scrape_configs: list[dict[str, Any]], rule_groups: list[dict[str, Any]],
                 *, interval: str = "1s") -> None:
        self._dir = workdir
        self._config = {
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
            "rule_files": ["rules.yaml"],
            "scrape_configs": scrape_configs,
        }
        self._rules = {"groups": rule_groups}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(base_url=self.url, timeout=30)

    def __enter__(self) -> PrometheusServer:
        config = self._dir / "prometheus.yaml"
        config.write_text(yaml.safe_dump(self._config, sort_keys=False))
        (self._dir / "rules.yaml").write_text(yaml.safe_dump(self._rules, sort_keys=False))
        check = subprocess.run([promtool(), "check", "config", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        binary = shutil.which("prometheus")
        assert binary, "Prometheus is missing: `make services` installs Debian's prometheus package"
        log = (self._dir / "prometheus.log").open("ab")
        self._process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={self._dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
             "--web.enable-lifecycle"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None and self._process.poll() is None, self.log_tail()
            try:
                if self._http.get("/-/ready").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"Prometheus not ready after {READY_TIMEOUT}s:\n{self.log_tail()}")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._http.close()
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def log_tail(self, lines: int = 30) -> str:
        path = self._dir / "prometheus.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # --- the HTTP API --------------------------------------------------------------------------

    def _get(self, path: str, **params: Any) -> Any:
        reply = self._http.get(f"/api/v1/{path}", params=params)
        body = reply.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[float]:
        """An instant query's values (a vector as a list; a scalar as one value)."""
        data = self._get("query", query=expr)
        if data["resultType"] == "scalar":
            return [float(data["result"][1])]
        return [float(sample["value"][1]) for sample in data["result"]]

    def series(self, selector: str, since: float) -> list[dict[str, str]]:
        return self._get("series", **{"match[]": selector, "start": since})

    def targets(self) -> list[dict[str, Any]]:
        return self._get("targets")["activeTargets"]

    def rule_groups(self) -> list[dict[str, Any]]:
        return self._get("rules")["groups"]
