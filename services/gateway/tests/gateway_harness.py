"""The gateway under test: the real app from `create_app`, started through its real lifespan (the
wiring root opens SQLite in a temporary folder, the blob folder, RabbitMQ in a throw-away vhost,
the peers and the LLM), reached with httpx through ASGITransport, or served by uvicorn."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.wiring import Resources
from tests.support.eventually import eventually
from tests.support.procs import free_port


def gateway_settings(tmp_path: Path, amqp_url: str, **overrides: Any) -> GatewaySettings:
    """Settings for one test: its own database and blobs, no keys, no LLM, peers nowhere."""
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/gateway.db", "blob_store_url": f"file://{tmp_path}/blobs",
        "amqp_url": amqp_url, "gateway_api_keys": [], "llm_base_url": None, "llm_model": None,
        "llm_timeout_seconds": 10.0, "scraper_addr": f"127.0.0.1:{free_port()}",
        "retriever_addr": f"127.0.0.1:{free_port()}", "gateway_scrape_deadline_seconds": 2.0,
        "gateway_retrieve_deadline_seconds": 2.0, "shutdown_grace_seconds": 2.0,
    }
    return GatewaySettings(**{**values, **overrides})


@dataclass
class Gateway:
    """A started gateway: its app, an httpx client on it, and the exit stack that stops both."""

    app: FastAPI
    client: httpx.AsyncClient
    stack: AsyncExitStack

    @classmethod
    async def start(cls, settings: GatewaySettings, stack: AsyncExitStack) -> Gateway:
        app = create_app(settings)
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway", timeout=30)
        stack.push_async_callback(client.aclose)
        return cls(app, client, stack)

    @property
    def resources(self) -> Resources:
        resources: Resources = self.app.state.resources
        return resources

    async def serve(self) -> str:
        """The same app on a real uvicorn server in this loop (for streamed responses); its base URL."""
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, lifespan="off",
                                               log_config=None, access_log=False, timeout_graceful_shutdown=2))
        task = asyncio.create_task(server.serve())

        async def stop() -> None:
            server.should_exit = True
            await task

        self.stack.push_async_callback(stop)
        await eventually(lambda: server.started or task.done(), within=10, what="uvicorn start")
        assert server.started, "uvicorn did not start"
        return f"http://127.0.0.1:{port}"
