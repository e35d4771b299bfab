"""The gateway's probes: /readyz reports each dependency and never hangs on one; health and metrics stay open."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from pydantic import SecretStr

import gateway.app


async def test_readyz_is_ready_when_database_and_broker_answer(jobs_gateway) -> None:
    gw = await jobs_gateway()
    reply = await gw.client.get("/readyz")
    assert reply.status_code == 200
    assert reply.json()["checks"] == {"database": True, "broker": True, "serving": True}


async def test_readyz_says_which_dependency_is_down(jobs_gateway) -> None:
    gw = await jobs_gateway()
    await gw.resources.amqp.close()
    reply = await gw.client.get("/readyz")
    assert reply.status_code == 503
    assert reply.json()["checks"] == {"database": True, "broker": False, "serving": True}


async def test_readyz_answers_within_its_deadline_when_the_database_hangs(jobs_gateway, monkeypatch) -> None:
    gw = await jobs_gateway()
    monkeypatch.setattr(gateway.app, "DATABASE_CHECK_SECONDS", 0.2)

    class HangingEngine:
        @contextlib.asynccontextmanager
        async def connect(self) -> AsyncIterator[Any]:
            await asyncio.Event().wait()  # a database that accepted the connection and went silent
            yield None

    real = gw.resources
    gw.app.state.resources = dataclasses.replace(real, engine=HangingEngine())
    try:
        reply = await asyncio.wait_for(gw.client.get("/readyz"), timeout=5)
    finally:
        gw.app.state.resources = real
    assert reply.status_code == 503
    assert reply.json()["checks"]["database"] is False


async def test_health_and_metrics_stay_open_when_api_keys_are_required(jobs_gateway) -> None:
    gw = await jobs_gateway(gateway_api_keys=[SecretStr("k-1")])
    assert (await gw.client.get("/healthz")).status_code == 200
    metrics = await gw.client.get("/metrics")
    assert metrics.status_code == 200 and "gateway_http_request_duration_seconds" in metrics.text
    assert (await gw.client.get("/v1/jobs?ids=x")).status_code == 401
