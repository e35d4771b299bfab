"""Processes of the gateway benchmarks: a FakeFastLLM, a gateway (`python -m gateway`) in front of
it, and the hello-world FastAPI app, each in a process of its own, stopped with the ExitStack."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The checkout on sys.path (for tests.support) before the imports below, hence their `noqa: E402`.
sys.path.insert(0, str(ROOT))

from tests.support import rabbitmq  # noqa: E402
from tests.support.procs import Service, free_port, grpc_serving, http_ok  # noqa: E402

API_KEY = "sk-bench"


def start(module: str, env: dict[str, str], log: Path, ready: Callable[[], bool], stack: ExitStack,
          args: tuple[str, ...] = (), timeout: float = 120.0) -> Service:
    service = Service(module, {**env, "CWD": str(ROOT)}, log, args)
    stack.callback(service.terminate)
    service.wait_until(ready, timeout)
    return service


@dataclass(frozen=True)
class LLMStack:
    llm_port: int
    gateway_port: int
    gateway: Service


class BenchStack:
    """Starts what a benchmark needs in `tmp`; everything stops when `stack` closes."""

    def __init__(self, stack: ExitStack, tmp: Path) -> None:
        self._stack, self._tmp = stack, tmp
        # A throw-away vhost: queues other runs left on the broker cannot stop a gateway starting.
        self._amqp_url = (stack.enter_context(rabbitmq.temporary_vhost("bench-gateway")) if rabbitmq.available()
                          else os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))

    def fake_llm(self, *, delay: float = 0.0, chunks: int = 8, interval: float = 0.02) -> int:
        port = free_port()
        start("tests.fakes.fake_llm_fast", {}, self._tmp / f"llm-{port}.log",
              lambda: http_ok(f"http://127.0.0.1:{port}/v1/models"), self._stack,
              args=("--port", str(port), "--delay", str(delay), "--chunks", str(chunks), "--interval", str(interval)))
        return port

    def gateway(self, llm_port: int, retriever: str | None = None, **env: str) -> LLMStack:
        port = free_port()
        settings = {
            "GATEWAY_PORT": str(port), "AMQP_URL": self._amqp_url, "LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
            "LLM_MODEL": "fake-model", "GATEWAY_API_KEYS": API_KEY, "SCRAPER_ADDR": f"127.0.0.1:{free_port()}",
            "RETRIEVER_ADDR": retriever or f"127.0.0.1:{free_port()}",
            "DATABASE_URL": f"sqlite+aiosqlite:///{self._tmp}/gateway-{port}.db",
            "BLOB_STORE_URL": f"file://{self._tmp}/blobs",
            # One bench key sends far more than any per-key quota: measure the gateway, not its limits.
            "GATEWAY_KEY_REQUESTS_PER_MINUTE": "0", "GATEWAY_KEY_MAX_CHATS": "0", "GATEWAY_MAX_IN_FLIGHT": "0",
            **env,
        }
        service = start("gateway", settings, self._tmp / f"gateway-{port}.log",
                        lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), self._stack)
        return LLMStack(llm_port, port, service)

    def hello_world(self) -> int:
        port = free_port()
        start("bench._hello_world", {}, self._tmp / "hello.log", lambda: http_ok(f"http://127.0.0.1:{port}/healthz"),
              self._stack, args=("--port", str(port)))
        return port

    def retriever(self) -> str:
        port = free_port()
        start("retriever", {"RETRIEVER_PORT": str(port), "RETRIEVER_METRICS_PORT": str(free_port()),
                            "QDRANT_PATH": ":memory:"}, self._tmp / "retriever.log",
              lambda: grpc_serving(f"127.0.0.1:{port}"), self._stack, timeout=300)
        return f"127.0.0.1:{port}"
