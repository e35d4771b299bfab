"""Graceful shutdown of the gateway: SIGTERM → not ready → no new connections → in-flight
requests finish → open job event streams end with a `reconnect` event → lifespan closes
everything, all within SHUTDOWN_GRACE_SECONDS.

uvicorn alone waits for every open connection, and an event stream of a long job stays open
for as long as the job runs: the process would only stop when the grace period ran out. So the
server tells the app when the signal arrives (`Draining`), and the streams end at once, telling
their clients to reconnect (to another replica, through the Service).
"""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

import uvicorn

# How long a client waits before it reconnects (the SSE `retry:` field, milliseconds).
RECONNECT_AFTER_MS = 1000


class Draining:
    """Set once the process was asked to stop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the app runs on (the lifespan binds it): `begin` may come from a signal handler."""
        self._loop = loop

    def begin(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._event.set)
        else:
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


class DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the app's `Draining` when SIGTERM or SIGINT arrives."""

    def __init__(self, config: uvicorn.Config, draining: Draining) -> None:
        super().__init__(config)
        self._draining = draining

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            self._draining.begin()
        super().handle_exit(sig, frame)
