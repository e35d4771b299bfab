"""Test-session setup shared by every test in the repo.

Each session gets its own RabbitMQ virtual host (deleted afterwards), exported as AMQP_URL, so
settings built in-process and services started as subprocesses all use it. Queues left on the
broker by an older run, a developer's `make run` or a concurrent session can never interfere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support import rabbitmq

# `one_machine_stack`: the whole platform as `make run` starts it, shared by the CLI and console tests.
pytest_plugins = ("tests.support.stack",)


@pytest.fixture(scope="session", autouse=True)
def session_broker_vhost() -> Iterator[str]:
    if not rabbitmq.available():
        pytest.exit("rabbitmqctl not found: run `make test`, which starts the local RabbitMQ", returncode=2)
    previous = os.environ.get("AMQP_URL")
    with rabbitmq.temporary_vhost("session") as url:
        os.environ["AMQP_URL"] = url
        try:
            yield url
        finally:
            if previous is None:
                os.environ.pop("AMQP_URL", None)
            else:
                os.environ["AMQP_URL"] = previous
