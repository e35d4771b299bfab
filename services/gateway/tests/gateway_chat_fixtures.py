"""Fixtures of the chat tests: the peers are in-process gRPC fakes reached through the real
`peers.py` clients, and the LLM is `FakeLLM`, a real OpenAI-compatible HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from gateway_harness import Gateway, gateway_settings

from tests.fakes.fake_llm import FakeLLM
from tests.fakes.fake_peers import FakePeers

GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM) -> Iterator[FakeLLM]:
    """The session's FakeLLM with fresh behaviour and records."""
    fake_llm_server.reset()
    yield fake_llm_server
    fake_llm_server.reset()


@pytest.fixture
async def fake_peers() -> AsyncIterator[FakePeers]:
    async with FakePeers() as peers:
        yield peers


@pytest.fixture
async def chat_gateway(tmp_path: Path, rabbit_url: str, fake_peers: FakePeers,
                       fake_llm: FakeLLM) -> AsyncIterator[GatewayFactory]:
    """`gw = await chat_gateway(llm=True, **settings)`: a gateway whose peers are `fake_peers` and
    whose LLM is `fake_llm` (none with `llm=False`: retrieval-only)."""
    async with AsyncExitStack() as stack:
        async def make(llm: bool = True, **overrides: Any) -> Gateway:
            if llm:
                overrides.setdefault("llm_base_url", fake_llm.base_url)
            overrides = {"scraper_addr": fake_peers.address, "retriever_addr": fake_peers.address, **overrides}
            return await Gateway.start(gateway_settings(tmp_path, rabbit_url, **overrides), stack)

        yield make


@pytest.fixture
async def chat_server(chat_gateway: GatewayFactory) -> Callable[..., Awaitable[str]]:
    """`base_url = await chat_server(**settings)`: a chat gateway (with the LLM unless
    `llm_base_url=None`) on a real uvicorn server in this loop."""
    async def make(**overrides: Any) -> str:
        gateway = await chat_gateway(**overrides)
        return await gateway.serve()

    return make
