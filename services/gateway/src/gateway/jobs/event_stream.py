"""`GET /v1/jobs/{id}/events`: server-sent events until the job ends.

`event: progress` whenever status, progress or stage changed; a `: keepalive` comment when
nothing was sent for a while; finally one event named after the terminal status (`succeeded`,
`failed`, `cancelled`) and the stream closes. Woken at once by updates this replica applies,
and re-reads the record every poll interval for updates another replica applied. When the
gateway shuts down, the stream ends with `event: reconnect` (and a `retry:` delay): the job goes
on, and the client opens the stream again, on another replica.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from gateway.draining import RECONNECT_AFTER_MS, Draining
from gateway.jobs.domain import Job
from gateway.jobs.notify import JobWatchers
from gateway.jobs.schemas import job_json
from gateway.sse import KEEPALIVE, sse_event

# The last event of a stream the gateway ends because it is shutting down.
RECONNECT = b"retry: %d\n" % RECONNECT_AFTER_MS + sse_event({"reason": "the server is shutting down; reconnect"},
                                                             "reconnect")


async def job_events(job_id: str, load: Callable[[str], Awaitable[Job | None]], watchers: JobWatchers,
                     draining: Draining, *, keepalive: float, poll: float) -> AsyncIterator[bytes]:
    with watchers.watch(job_id) as woken:
        last_state: tuple[str, int, str] | None = None
        last_sent = time.monotonic()
        while True:
            if draining.is_set():
                yield RECONNECT
                return
            woken.clear()
            job = await load(job_id)
            if job is None:  # deleted under us
                return
            if job.terminal:
                yield sse_event(job_json(job), job.status.value)
                return
            state = (job.status, job.progress, job.stage)
            if state != last_state:
                last_state, last_sent = state, time.monotonic()
                yield sse_event(job_json(job), "progress")
            elif time.monotonic() - last_sent >= keepalive:
                last_sent = time.monotonic()
                yield KEEPALIVE
            wait = min(poll, max(0.0, keepalive - (time.monotonic() - last_sent)))
            await _woken_or_draining(woken, draining, wait)


async def _woken_or_draining(woken: asyncio.Event, draining: Draining, within: float) -> None:
    waits = [asyncio.create_task(woken.wait()), asyncio.create_task(draining.wait())]
    try:
        await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
