"""SIGTERM/SIGINT -> an asyncio.Event that starts the graceful-shutdown sequence."""

from __future__ import annotations

import asyncio
import logging
import signal

log = logging.getLogger(__name__)


def shutdown_event() -> asyncio.Event:
    """An event set on the first SIGTERM or SIGINT; must be called from the running loop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def _on_signal(signum: int) -> None:
        if not stop.is_set():
            log.info("shutdown requested", extra={"signal": signal.Signals(signum).name})
            stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, signum)
    return stop
