"""Test-session setup shared by every test in the repo.

RabbitMQ is opt-in: a test (or fixture) that needs the broker asks for `rabbit_url`, a virtual
host of its own for the session (deleted afterwards) that is also exported as AMQP_URL, so that
services started as subprocesses use it. Queues left on the broker by an older run, a developer's
`make run` or a concurrent session can never interfere. Pure unit tests run with no broker.

Until a test asks for `rabbit_url`, AMQP_URL names a virtual host that does not exist: a test
that reaches the broker without asking fails at once instead of using the broker's default "/".
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support import rabbitmq

# `one_machine_stack`: the whole platform as `make run` starts it, shared by the CLI and console tests.
pytest_plugins = ("tests.support.stack",)

# The broker's answer to this vhost is "not allowed": nothing is ever declared there.
NO_BROKER_URL = rabbitmq.url_for("no-such-vhost-ask-for-the-rabbit_url-fixture")

_OUTER_AMQP_URL = pytest.StashKey[str | None]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_OUTER_AMQP_URL] = os.environ.get("AMQP_URL")
    os.environ["AMQP_URL"] = NO_BROKER_URL


def pytest_unconfigure(config: pytest.Config) -> None:
    outer = config.stash.get(_OUTER_AMQP_URL, None)
    if outer is None:
        os.environ.pop("AMQP_URL", None)
    else:
        os.environ["AMQP_URL"] = outer


@pytest.fixture(scope="session")
def rabbit_url() -> Iterator[str]:
    """The AMQP URL of this session's throw-away vhost on the local RabbitMQ (also in AMQP_URL)."""
    with rabbitmq.temporary_vhost("session") as url:
        os.environ["AMQP_URL"] = url
        try:
            yield url
        finally:
            os.environ["AMQP_URL"] = NO_BROKER_URL
