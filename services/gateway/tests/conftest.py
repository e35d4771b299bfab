"""Fixtures of the gateway's tests. Each test starts the real app through its lifespan (the one
wiring root) with the fixtures of `gateway_chat_fixtures`, `gateway_documents_fixtures` and
`gateway_jobs_fixtures`; `gateway_harness` holds what they share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway_chat_fixtures import chat_gateway, chat_server, fake_llm, fake_llm_server, fake_peers
from gateway_documents_fixtures import documents_gateway, fake_index
from gateway_jobs_fixtures import jobs_gateway

from tests.support import rabbitmq

__all__ = ["chat_gateway", "chat_server", "documents_gateway", "fake_index", "fake_llm", "fake_llm_server",
           "fake_peers", "jobs_gateway", "rabbit_url"]



@pytest.fixture(scope="session")
def rabbit_url() -> Iterator[str]:
    """AMQP URL of a vhost of the local RabbitMQ that only this test session uses."""
    if not rabbitmq.available():
        pytest.skip("rabbitmqctl not found: the gateway tests need the local RabbitMQ")
    with rabbitmq.temporary_vhost("gateway") as url:
        yield url
