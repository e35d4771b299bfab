"""Gateway feature: jobs (HTTP routes and the resources they need)."""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import APIRouter, FastAPI

from gateway.settings import GatewaySettings

router = APIRouter()


async def open_resources(app: FastAPI, settings: GatewaySettings, stack: AsyncExitStack) -> None:
    """Create this feature's long-lived clients on app.state; close them through `stack`."""
