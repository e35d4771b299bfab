"""The web console is served by the gateway: the page at `/`, its files under `/console/`, with a
Content Security Policy that lets only the gateway's own scripts run; the API stays keyed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from gateway.app import create_app
from gateway.console import STATIC
from gateway.settings import GatewaySettings


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(GatewaySettings(gateway_api_keys=[SecretStr("k1")]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
        yield http


async def test_the_console_page_and_its_files_are_served_without_a_key(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    for asset in re.findall(r'(?:src|href)="(/console/[^"]+)"', page.text):
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert served.headers["content-security-policy"] == csp
    script = await client.get("/console/js/main.js")
    assert "javascript" in script.headers["content-type"]
    assert (await client.get("/console/js/missing.js")).status_code == 404


async def test_the_api_behind_the_console_still_needs_the_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/models")).status_code == 401


def test_console_scripts_build_the_page_from_text_only() -> None:
    """Content from pages, documents and model output must never be parsed as HTML."""
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|srcdoc")
    scripts = sorted(Path(STATIC).rglob("*.js"))
    assert scripts
    for script in scripts:
        assert not sinks.search(script.read_text()), script.name
