"""The fault-injection suite (`make faults`; not part of the plain `pytest` run: every module here
sets `pytestmark = pytest.mark.faults`, which pyproject's addopts deselect). A private RabbitMQ node per session,
stopped and started by the scenarios; the shared broker on 127.0.0.1:5672 is never touched."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.faults.broker import PrivateBroker, available, private_broker


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
