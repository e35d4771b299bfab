"""The fault-injection suite (`make faults`; not part of the plain `pytest` run: every module here
sets `pytestmark = pytest.mark.faults`, which pyproject's addopts deselect). A private RabbitMQ node per session,
stopped and started by the scenarios; the shared broker on 127.0.0.1:5672 is never touched. The real
retriever (embedded Qdrant engine, the real embedding model) serves the whole session; each
scenario starts its own ingest and imagegen workers on a virtual host of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.broker import PrivateBroker, available, private_broker
from tests.faults.platform import RetrieverProcess, Workers


@pytest.fixture(scope="session")
def broker() -> Iterator[PrivateBroker]:
    if not available():
        pytest.fail("the fault suite needs rabbitmq-server, rabbitmqctl and rabbitmq-diagnostics")
    with private_broker() as node:
        yield node


@pytest.fixture
def vhost_url(broker: PrivateBroker) -> str:
    """A virtual host of the test's own on the private node."""
    vhost = f"faults-{uuid.uuid4().hex[:8]}"
    broker.ctl("add_vhost", vhost)
    broker.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    return f"{broker.url}{vhost}"


@pytest.fixture(scope="session")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RetrieverProcess]:
    node = RetrieverProcess(tmp_path_factory.mktemp("retriever")).start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def workers(vhost_url: str, tmp_path: Path, retriever: RetrieverProcess) -> Iterator[Workers]:
    """The real ingest and imagegen for this scenario (not started: a scenario starts what it needs)."""
    team = Workers(tmp_path, vhost_url, retriever.addr)
    try:
        yield team
    finally:
        team.stop()
