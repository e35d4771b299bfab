"""A private RabbitMQ node for the fault suite, which stops and starts it at will.

The shared broker on 127.0.0.1:5672 serves every other test run on the machine: it is never
stopped. This node has its own name, ports, database and logs under a temporary folder, no
plugins (management and prometheus off), and is always shut down when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.support.procs import free_port

START_TIMEOUT = 90.0


class PrivateBroker:
    def __init__(self, root: Path) -> None:
        self.name = f"genai-faults-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self._root = root
        self._process: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        for folder in ("mnesia", "log"):
            (self._root / folder).mkdir(exist_ok=True)
        if os.geteuid() == 0 and _has_user("rabbitmq"):  # the packaged script runs the node as `rabbitmq`
            for path in (self._root, self._root / "mnesia", self._root / "log"):
                shutil.chown(path, "rabbitmq", "rabbitmq")
        plugins = self._root / "enabled_plugins"
        plugins.write_text("[].\n")
        config = self._root / "rabbitmq.conf"
        # guest may connect from 127.0.0.1 only (the default); no disk alarm on a busy shared disk.
        config.write_text("listeners.tcp.default = 127.0.0.1:%d\ndisk_free_limit.absolute = 1MB\n" % self.port)
        return {**os.environ, "RABBITMQ_NODENAME": self.name, "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_DIST_PORT": str(free_port()),
                "RABBITMQ_MNESIA_BASE": str(self._root / "mnesia"), "RABBITMQ_LOG_BASE": str(self._root / "log"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins), "RABBITMQ_CONFIG_FILE": str(config.with_suffix("")),
                "RABBITMQ_PID_FILE": str(self._root / "rabbit.pid"),
                "RABBITMQ_FEATURE_FLAGS_FILE": str(self._root / "feature_flags"),
                "ERL_CRASH_DUMP": str(self._root / "erl_crash.dump")}

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        done = subprocess.run(["rabbitmqctl", "-n", self.name, "--quiet", *args], capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def ping(self) -> bool:
        done = subprocess.run(["rabbitmq-diagnostics", "-n", self.name, "-q", "ping"], capture_output=True,
                              timeout=30)
        return done.returncode == 0

    def start(self) -> None:
        log = (self._root / "server.out").open("wb")
        self._process = subprocess.Popen(["rabbitmq-server"], env=self._env(), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self._wait_running()

    def _wait_running(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited: {self.logs()}")
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.ctl("await_startup", timeout=30)
                return
            time.sleep(0.5)
        raise RuntimeError(f"private RabbitMQ not up within {START_TIMEOUT} s: {self.logs()}")

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.ctl("await_startup")

    def block_publishers(self) -> None:
        """Raise the memory alarm: the broker blocks every publishing connection."""
        self.ctl("set_vm_memory_high_watermark", "absolute", "1")

    def unblock_publishers(self) -> None:
        self.ctl("set_vm_memory_high_watermark", "0.4")

    def node_log(self) -> str:
        """The node's own log (connections accepted and closed, missed heartbeats)."""
        return "".join(path.read_text(errors="replace") for path in sorted((self._root / "log").glob("*.log")))

    def connections(self, vhost: str) -> list[tuple[str, str, str]]:
        """(connection name the client gave, connected at, heartbeat seconds) of every client
        connection to `vhost`."""
        rows = self.ctl("list_connections", "vhost", "connected_at", "timeout", "client_properties",
                        "--no-table-headers")
        found = []
        for line in rows.splitlines():
            parts = line.split("\t")
            name = re.search(r'\{"connection_name","([^"]*)"\}', line)
            if len(parts) >= 4 and parts[0] == vhost:
                found.append((name.group(1) if name else "", parts[1], parts[2]))
        return sorted(found)

    def logs(self) -> str:
        out = self._root / "server.out"
        return out.read_text(errors="replace")[-3000:] if out.exists() else ""

    def shutdown(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.ctl("shutdown", timeout=60)
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, 9)
            self._process.wait(timeout=30)
        # epmd (the Erlang port mapper) may have been started for this node: it serves every node
        # on the machine and is left running, as it would be after any rabbitmq-server.
        self._process = None


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def available() -> bool:
    return all(shutil.which(tool) for tool in ("rabbitmq-server", "rabbitmqctl", "rabbitmq-diagnostics"))


@contextlib.contextmanager
def private_broker() -> Iterator[PrivateBroker]:
    """Start a private node; always shut it down (and remove its files) when the block ends."""
    with tempfile.TemporaryDirectory(prefix="genai-faults-") as root:
        broker = PrivateBroker(Path(root))
        try:
            broker.start()
            yield broker
        finally:
            broker.shutdown()
