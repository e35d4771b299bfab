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
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

from tests.fakes.fake_llm import FakeLLM
from tests.support import rabbitmq
from tests.support.procs import OFFLINE_ENV, ROOT, free_port
from tests.support.stack import Site, wait_until_up

RABBITMQ_METRICS = "127.0.0.1:15692"


@dataclass(frozen=True)
class Stack:
    gateway: str  # http://127.0.0.1:port
    scraper_grpc: str
    retriever_grpc: str
    amqp_url: str
    page_url: str
    llm: FakeLLM
    metrics: dict[str, str]  # component -> host:port of its /metrics
    state: Path

    def logs(self) -> str:
        return "".join(f"\n--- {p.name}\n" + p.read_text(errors="replace")[-4000:]
                       for p in sorted((self.state / "var" / "logs").glob("*.log")))


@contextlib.contextmanager
def running_stack(state: Path) -> Iterator[Stack]:
    pages = ThreadingHTTPServer(("127.0.0.1", 0), Site)
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
            for inherited in ("SCRAPER_ADDR", "RETRIEVER_ADDR", "DATABASE_URL", "BLOB_STORE_URL", "QDRANT_URL",
                              "GATEWAY_API_KEYS"):
                env.pop(inherited, None)  # the launcher's one-machine defaults, on the ports above
            launcher = subprocess.Popen([sys.executable, "scripts/devstack.py"], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
            try:
                wait_until_up(launcher, state)
                yield Stack(
                    gateway=f"http://127.0.0.1:{ports['gateway']}",
                    scraper_grpc=f"127.0.0.1:{ports['scraper']}", retriever_grpc=f"127.0.0.1:{ports['retriever']}",
                    amqp_url=amqp_url, page_url=f"http://127.0.0.1:{page_port}/harbour", llm=llm, state=state,
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
