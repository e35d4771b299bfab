"""One `make run` stack per test session, for the tests that drive the platform as a user would
(the `genai` command, the web console in Chromium).

`scripts/devstack.py` starts every service on free ports with a throw-away state directory and
RabbitMQ vhost, an API key required, the FakeLLM as its LLM (tests make it stream slowly, so an
answer is seen while it arrives) and a local web site the scraper may read. Starting it loads
the embedding model, so the fixture is session-scoped and started only when a test asks for it.
Registered as a plugin by the root conftest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fakes.fake_llm import FakeLLM
from tests.support import rabbitmq
from tests.support.procs import OFFLINE_ENV, ROOT, free_port

API_KEY = "console-test-key"
UP_TIMEOUT = 300.0

# A page whose *text* contains markup: a client that renders it as HTML would run the script.
PAGES = {
    "/harbour": b"""<html><head><title>Harbour opening hours</title></head><body><article>
<h1>Harbour opening hours</h1>
<p>The old harbour museum opens at nine in the morning and closes at five in the evening, every day
except Mondays. Guided tours of the lighthouse start at eleven and last an hour.</p>
</article></body></html>""",
    "/markup": b"""<html><head><title>Escaping &lt;script&gt; in templates</title></head><body><article>
<h1>Escaping &lt;script&gt; in templates</h1>
<p>Never paste user text into a page unescaped: the text
&lt;script&gt;window.__pwned = true&lt;/script&gt; would run in every visitor's browser.</p>
<p>Escaping turns the angle brackets into entities, so the browser shows the characters instead.
Template engines do this by default; turning it off is how cross-site scripting happens.</p>
</article></body></html>""",
}


class Site(BaseHTTPRequestHandler):
    """The local web site the scraper may read: PAGES by path."""

    def do_GET(self) -> None:  # noqa: N802
        body = PAGES.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@dataclass(frozen=True)
class RunningStack:
    url: str
    api_key: str
    site: str          # base URL of the local web site (PAGES)
    llm: FakeLLM
    state: Path

    def logs(self) -> str:
        return "".join(f"\n--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
                       for p in sorted((self.state / "var" / "logs").glob("*.log")))


def _env(state: Path, amqp_url: str, llm: FakeLLM, site_port: int, gateway_port: int) -> dict[str, str]:
    env = {
        **os.environ, **OFFLINE_ENV, "AMQP_URL": amqp_url, "GENAI_STATE_DIR": str(state),
        "GATEWAY_PORT": str(gateway_port),
        "SCRAPER_PORT": str(free_port()), "SCRAPER_METRICS_PORT": str(free_port()),
        "RETRIEVER_PORT": str(free_port()), "RETRIEVER_METRICS_PORT": str(free_port()),
        "INGEST_METRICS_PORT": str(free_port()), "IMAGEGEN_METRICS_PORT": str(free_port()),
        "SCRAPER_ALLOW_PRIVATE_NETWORKS": "true", "SCRAPER_ALLOWED_PORTS": f"80,443,{site_port}",
        "GATEWAY_API_KEYS": API_KEY, "LLM_BASE_URL": llm.base_url, "LLM_MODEL": llm.model,
    }
    for name in ("SCRAPER_ADDR", "RETRIEVER_ADDR", "DATABASE_URL", "BLOB_STORE_URL", "QDRANT_URL"):
        env.pop(name, None)
    return env


def wait_until_up(proc: subprocess.Popen, state: Path) -> None:
    """Read the launcher's output until it says the platform is up (then keep draining it)."""
    assert proc.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + UP_TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            pytest.fail("the stack's launcher exited early:\n" + "".join(output))
        output.append(line)
        if "genai is up" in line:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
            return
    proc.kill()
    pytest.fail(f"the stack was not up within {UP_TIMEOUT:.0f} s:\n" + "".join(output))


@pytest.fixture(scope="session")
def one_machine_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    site = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    state = tmp_path_factory.mktemp("one-machine")
    gateway_port = free_port()
    # A vhost of its own: this stack lives all session, beside other tests' workers and queues.
    with FakeLLM() as llm, rabbitmq.temporary_vhost("stack") as amqp_url:
        proc = subprocess.Popen([sys.executable, "scripts/devstack.py"], cwd=ROOT, text=True,
                                env=_env(state, amqp_url, llm, site.server_port, gateway_port),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_until_up(proc, state)
            yield RunningStack(f"http://127.0.0.1:{gateway_port}", API_KEY,
                               f"http://127.0.0.1:{site.server_port}", llm, state)
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            site.shutdown()
