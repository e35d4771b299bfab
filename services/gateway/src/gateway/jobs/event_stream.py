"""`GET /v1/jobs/{id}/events`: server-sent events until the job ends.

`event: progress` whenever status, progress or stage changed; a `: keepalive` comment when
nothing was sent for a while; finally one event named after the terminal status (`succeeded`,
`failed`, `cancelled`) and the stream closes. Woken at once by updates this replica applies,
and re-reads the record every poll interval for updates another replica applied.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from gateway.jobs.domain import Job
from gateway.jobs.notify import JobWatchers
from gateway.jobs.schemas import job_json
from gateway.sse import KEEPALIVE, sse_event


async def job_events(job_id: str, load: Callable[[str], Awaitable[Job | None]], watchers: JobWatchers,
                     *, keepalive: float, poll: float) -> AsyncIterator[bytes]:
    with watchers.watch(job_id) as woken:
        last_state: tuple[str, int, str] | None = None
        last_sent = time.monotonic()
        while True:
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
            try:
                await asyncio.wait_for(woken.wait(), timeout=wait)
            except TimeoutError:
                pass
