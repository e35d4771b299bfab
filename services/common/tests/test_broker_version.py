"""The broker's version is read at connect: logged, and refused below what our queues need."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from genai_common.amqp import MINIMUM_VERSION, Amqp, BrokerTooOld
from genai_common.amqp.broker_version import check_broker, parse_version
from tests.support import rabbitmq
from tests.support.eventually import eventually


def test_versions_parse_as_numbers_not_text() -> None:
    assert parse_version("3.10.8") == (3, 10, 8)
    assert parse_version("4.1.0-rc.1") == (4, 1, 0)
    assert parse_version("3.9") == (3, 9, 0)
    assert parse_version("garbage") is None
    assert parse_version("3.9.29") < MINIMUM_VERSION <= parse_version("3.10.0")  # type: ignore[operator]


def test_a_broker_older_than_the_minimum_is_refused_with_both_versions_named() -> None:
    with pytest.raises(BrokerTooOld) as refused:
        check_broker({"product": b"RabbitMQ", "version": b"3.9.29"}, connection_name="ingest")
    assert "RabbitMQ 3.9.29" in str(refused.value) and "3.10.0" in str(refused.value)


def test_a_current_broker_is_logged_and_an_unreadable_version_only_warned(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="genai_common.amqp.broker_version")
    assert check_broker({"product": b"RabbitMQ", "version": b"4.1.0"}, connection_name="gateway") == "4.1.0"
    assert check_broker({"product": "SomeProxy"}, connection_name="gateway") == ""
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "connected to RabbitMQ 4.1.0"),
        ("WARNING", "the broker did not report a readable version (SomeProxy ''); RabbitMQ 3.10.0 or later is needed"),
    ]


async def test_the_real_broker_reports_its_version_at_connect(rabbit_url: str) -> None:
    async with Amqp(rabbit_url, name=f"test-{uuid.uuid4().hex[:8]}") as amqp:
        version = parse_version(amqp.broker_version)
    assert version is not None and version >= MINIMUM_VERSION


async def test_the_version_is_read_again_after_a_reconnect(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="genai_common.amqp.broker_version")
    with rabbitmq.temporary_vhost("broker-version") as url:
        async with Amqp(url, name=f"test-{uuid.uuid4().hex[:8]}") as amqp:
            await asyncio.to_thread(rabbitmq.close_connections, url)
            await eventually(lambda: _connected_logs(caplog), lambda n: n >= 2 and amqp.is_connected, within=30,
                             every=0.2, what="the reconnect logged with the broker's version")
            assert amqp.broker_version


async def _connected_logs(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.name == "genai_common.amqp.broker_version" and r.getMessage().startswith("connected to RabbitMQ")
               for r in caplog.records)


async def test_connect_refuses_a_broker_below_the_minimum(
        rabbit_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("genai_common.amqp.broker_version.MINIMUM_VERSION", (99, 0, 0))
    amqp = Amqp(rabbit_url, name=f"test-{uuid.uuid4().hex[:8]}")
    with pytest.raises(BrokerTooOld, match=r"older than 99\.0\.0"):
        await amqp.connect()
    assert not amqp.is_connected
