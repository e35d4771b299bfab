"""In-process wake-ups for job event streams: whoever applies an update notifies the job's watchers.

Only the replica that applied an update knows about it; streams also re-read the record
periodically, so a stream on another replica is late by at most its poll interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class JobWatchers:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}

    @contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    def notify(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()
