"""A throw-away RabbitMQ virtual host per test session, so concurrent runs never share queues.

Everything a test declares (the `genai.events` exchange, quorum queues, dead-letter queues)
lives in its own vhost on the local broker and disappears with it. Needs `rabbitmqctl` on the
machine that runs the broker (the local one here); a test that needs the broker fails without it.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import quote, unquote

BROKER = "amqp://guest:guest@127.0.0.1:5672"


def available() -> bool:
    return shutil.which("rabbitmqctl") is not None


def rabbitmqctl(*args: str, timeout: float = 60.0) -> str:
    if not available():
        raise RuntimeError("rabbitmqctl not found: run `make test`, which starts the local RabbitMQ")
    done = subprocess.run(["rabbitmqctl", "--quiet", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def url_for(vhost: str) -> str:
    return f"{BROKER}/{quote(vhost, safe='')}"


def vhost_of(amqp_url: str) -> str:
    return unquote(amqp_url.rsplit("/", 1)[-1])


@contextlib.contextmanager
def temporary_vhost(prefix: str = "test") -> Iterator[str]:
    """Yields the AMQP URL of a fresh vhost (guest has full rights); deletes it afterwards."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield url_for(vhost)
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            rabbitmqctl("delete_vhost", vhost)


def close_connections(amqp_url: str, reason: str = "test: broker connection drop") -> None:
    """Drop every client connection of this URL's vhost, as a broker restart does (others untouched)."""
    rabbitmqctl("close_all_connections", "--vhost", vhost_of(amqp_url), reason)


def queue_depth(amqp_url: str, queue: str) -> int:
    """Ready + unacknowledged messages in `queue` (0 when the queue does not exist)."""
    out = rabbitmqctl("list_queues", "-p", vhost_of(amqp_url), "name", "messages")
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[0] == queue:
            return int(parts[1])
    return 0
