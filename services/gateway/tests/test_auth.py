"""API keys on every /v1 route (every feature's router); health and metrics stay open."""

from __future__ import annotations

import logging
import re

import pytest
from pydantic import SecretStr

from gateway import auth as auth_module
from gateway.auth import ApiKeyAuth

KEYS = ("sk-first-0123456789abcdef", "sk-second-fedcba9876543210")
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "genai": {"rag": False, "scrape": False}}


@pytest.fixture
async def keyed(chat_gateway):
    return (await chat_gateway(gateway_api_keys=",".join(KEYS))).client


def _assert_401(reply) -> None:
    assert reply.status_code == 401, reply.text
    assert reply.headers["www-authenticate"] == "Bearer"
    error = reply.json()["error"]
    assert error["type"] == "authentication_error" and error["message"]


async def test_missing_or_wrong_key_is_401(keyed) -> None:
    _assert_401(await keyed.post("/v1/chat/completions", json=CHAT))
    _assert_401(await keyed.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer sk-nope"}))
    _assert_401(await keyed.get("/v1/models", headers={"Authorization": f"Basic {KEYS[0]}"}))
    _assert_401(await keyed.get("/v1/models", headers={"Authorization": f"Bearer {KEYS[0]}x"}))


async def test_any_configured_key_is_accepted(keyed, fake_llm) -> None:
    for key in KEYS:
        headers = {"Authorization": f"Bearer {key}"}
        assert (await keyed.get("/v1/models", headers=headers)).status_code == 200
        reply = await keyed.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert reply.status_code == 200, reply.text
    # The client's key is the gateway's business; it is not forwarded to the LLM.
    assert all(KEYS[0] not in str(r.headers) and KEYS[1] not in str(r.headers) for r in fake_llm.requests)


async def test_every_v1_route_of_every_feature_needs_a_key(keyed) -> None:
    paths = (await keyed.get("/openapi.json")).json()["paths"]
    checked = 0
    for path, operations in paths.items():
        assert path.startswith("/v1/"), path
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        for method in operations:
            _assert_401(await keyed.request(method.upper(), concrete))
            checked += 1
    assert checked >= 2


async def test_health_and_metrics_stay_open(keyed) -> None:
    assert (await keyed.get("/healthz")).status_code == 200
    metrics = await keyed.get("/metrics")
    assert metrics.status_code == 200 and "gateway_chat_requests_total" in metrics.text


async def test_no_keys_means_open(chat_gateway) -> None:
    client = (await chat_gateway(llm=False)).client
    assert (await client.get("/v1/models")).status_code == 200


async def test_keys_never_reach_the_logs(chat_gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = (await chat_gateway(gateway_api_keys=",".join(KEYS))).client
    await client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {KEYS[1]}"})
    await client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer sk-wrong-guess-1234"})
    await client.get("/v1/models")
    assert caplog.records  # something was logged, and none of it is a key
    for secret in (*KEYS, "sk-wrong-guess-1234"):
        assert secret not in caplog.text
    assert all(secret not in repr(r.__dict__) for r in caplog.records for secret in KEYS)


def test_every_key_is_compared_with_no_early_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    compared = []
    real = auth_module.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", counting)
    checker = ApiKeyAuth([SecretStr(k) for k in ("k1", "k2", "k3")])
    assert checker.matches("k1")
    assert len(compared) == 3  # the first key matched, and the other two were still compared
    assert not checker.matches("k4")
    assert len(compared) == 6
