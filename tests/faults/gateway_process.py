"""The real gateway as a process (`python -m gateway`) on the private broker."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.procs import Service, free_port, http_ok


def gateway_env(state: Path, amqp_url: str, **overrides: Any) -> dict[str, str]:
    port = free_port()
    env = {
        "GATEWAY_PORT": str(port), "AMQP_URL": amqp_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{state}/gateway.db", "BLOB_STORE_URL": f"file://{state}/blobs",
        "SCRAPER_ADDR": f"127.0.0.1:{free_port()}", "RETRIEVER_ADDR": f"127.0.0.1:{free_port()}",
        "GATEWAY_RETRIEVE_DEADLINE_SECONDS": "1", "GATEWAY_SCRAPE_DEADLINE_SECONDS": "1",
        "AMQP_PUBLISH_TIMEOUT_SECONDS": "2", "SHUTDOWN_GRACE_SECONDS": "10", "LOG_LEVEL": "WARNING",
        "GATEWAY_SWEEP_INTERVAL_SECONDS": "5",
    }
    env.update({k.upper(): str(v) for k, v in overrides.items()})
    return env


def url_of(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['GATEWAY_PORT']}"


def start_gateway(env: dict[str, str], log: Path) -> Service:
    service = Service("gateway", env, log)
    service.wait_until(lambda: http_ok(f"{url_of(env)}/readyz"), timeout=60)
    return service


@contextlib.contextmanager
def gateway(env: dict[str, str], log: Path) -> Iterator[Service]:
    service = start_gateway(env, log)
    try:
        yield service
    finally:
        service.terminate()
