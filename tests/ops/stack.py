"""The one-machine platform for the ops check: `make run`'s launcher (scripts/devstack.py) with
every service on a free loopback port, in a RabbitMQ vhost of its own, answering chats through a
FakeLLM (which also serves vLLM's metrics), reading pages from a local web server. Everything it
starts is stopped on exit."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.fakes.fake_llm import FakeLLM
from tests.support import rabbitmq
from tests.support.procs import OFFLINE_ENV, ROOT, free_port

UP_TIMEOUT = 300.0
RABBITMQ_METRICS = "127.0.0.1:15692"
PAGE = b"""<html><head><title>Harbour opening hours</title></head><body><article>
<h1>Harbour opening hours</h1>
<p>The old harbour museum opens at nine in the morning and closes at five in the evening,
every day except Mondays. Guided tours of the lighthouse start at eleven and last an hour.</p>
<p>Tickets cost twelve euros for adults; children under twelve enter free of charge.</p>
</article></body></html>"""


class _Pages(BaseHTTPRequestHandler):
    """/harbour: an article; /slow: answers after `slow_seconds` (a page slower than its caller's deadline)."""

    slow_seconds = 3.0

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.startswith("/slow"):
            time.sleep(self.slow_seconds)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        pass


@dataclass(frozen=True)
class Stack:
    gateway: str  # http://127.0.0.1:port
    scraper_grpc: str
    retriever_grpc: str
    amqp_url: str
    page_url: str
    slow_page_url: str
    llm: FakeLLM
    metrics: dict[str, str]  # component -> host:port of its /metrics
    state: Path

    def logs(self) -> str:
        return "".join(f"\n--- {p.name}\n" + p.read_text(errors="replace")[-4000:]
                       for p in sorted((self.state / "var" / "logs").glob("*.log")))


@contextlib.contextmanager
def running_stack(state: Path) -> Iterator[Stack]:
    pages = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    page_port = pages.server_port
    ports = {name: free_port() for name in ("gateway", "scraper", "scraper_metrics", "retriever",
                                            "retriever_metrics", "ingest_metrics", "imagegen_metrics")}
    try:
        with FakeLLM() as llm, rabbitmq.temporary_vhost("ops") as amqp_url:
            env = {
                **os.environ, **OFFLINE_ENV, "GENAI_STATE_DIR": str(state), "AMQP_URL": amqp_url,
                "GATEWAY_PORT": str(ports["gateway"]),
                "SCRAPER_PORT": str(ports["scraper"]), "SCRAPER_METRICS_PORT": str(ports["scraper_metrics"]),
                "RETRIEVER_PORT": str(ports["retriever"]), "RETRIEVER_METRICS_PORT": str(ports["retriever_metrics"]),
                "INGEST_METRICS_PORT": str(ports["ingest_metrics"]),
                "IMAGEGEN_METRICS_PORT": str(ports["imagegen_metrics"]),
                "LLM_BASE_URL": llm.base_url, "LLM_MODEL": llm.model,
                "SCRAPER_ALLOW_PRIVATE_NETWORKS": "true", "SCRAPER_ALLOWED_PORTS": f"80,443,{page_port}",
                # Counts of records and the collection size refresh every second (Prometheus scrapes as often).
                "GATEWAY_STATS_INTERVAL_SECONDS": "1", "RETRIEVER_STATS_INTERVAL_SECONDS": "1",
                "INGEST_RETRY_ATTEMPTS": "1", "IMAGEGEN_MODEL": "tiny-random",
            }
            launcher = subprocess.Popen([sys.executable, "scripts/devstack.py"], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
            try:
                _wait_until_up(launcher, state)
                yield Stack(
                    gateway=f"http://127.0.0.1:{ports['gateway']}",
                    scraper_grpc=f"127.0.0.1:{ports['scraper']}", retriever_grpc=f"127.0.0.1:{ports['retriever']}",
                    amqp_url=amqp_url, page_url=f"http://127.0.0.1:{page_port}/harbour",
                    slow_page_url=f"http://127.0.0.1:{page_port}/slow", llm=llm, state=state,
                    metrics={
                        "gateway": f"127.0.0.1:{ports['gateway']}",
                        "scraper": f"127.0.0.1:{ports['scraper_metrics']}",
                        "retriever": f"127.0.0.1:{ports['retriever_metrics']}",
                        "ingest": f"127.0.0.1:{ports['ingest_metrics']}",
                        "imagegen": f"127.0.0.1:{ports['imagegen_metrics']}",
                        "vllm": f"127.0.0.1:{llm.port}",
                        "rabbitmq": RABBITMQ_METRICS,
                    },
                )
            finally:
                _stop(launcher)
    finally:
        pages.shutdown()


def _wait_until_up(launcher: subprocess.Popen[str], state: Path) -> None:
    output: list[str] = []
    deadline = time.monotonic() + UP_TIMEOUT
    assert launcher.stdout is not None
    while time.monotonic() < deadline:
        line = launcher.stdout.readline()
        if not line and launcher.poll() is not None:
            raise RuntimeError("the platform's launcher exited early:\n" + "".join(output) + _logs(state))
        output.append(line)
        if "genai is up" in line:
            # Keep reading (and dropping) what the launcher prints, so it never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in launcher.stdout or ()], daemon=True).start()
            return
    raise TimeoutError(f"the platform was not up within {UP_TIMEOUT:.0f} s:\n" + "".join(output) + _logs(state))


def _logs(state: Path) -> str:
    return "".join(f"\n--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
                   for p in sorted((state / "var" / "logs").glob("*.log")))


def _stop(launcher: subprocess.Popen[str]) -> None:
    """SIGTERM to the launcher (it stops every service in order); the whole group is killed if it hangs."""
    if launcher.poll() is None:
        launcher.send_signal(signal.SIGTERM)
        try:
            launcher.wait(90)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(launcher.pid, signal.SIGKILL)
    launcher.wait()
