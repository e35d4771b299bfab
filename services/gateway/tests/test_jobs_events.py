"""`GET /v1/jobs/{id}/events`: live progress as server-sent events, ending with the terminal event."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx

from gateway.jobs.store import JobStore
from gateway.progress import JobState, ProgressReport
from genai.events.v1 import events_pb2
from tests.support.eventually import eventually

IMAGE = {"prompt": "a lighthouse at dusk", "n": 1, "size": "64x64", "steps": 3, "seed": 7}


class EventReader:
    """Reads an SSE stream in the background: `events` as (name, data), `comments`, `ended`."""

    def __init__(self, client: httpx.AsyncClient, path: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.comments: list[str] = []
        self.status: int | None = None
        self._task = asyncio.create_task(self._read(client, path))

    async def _read(self, client: httpx.AsyncClient, path: str) -> None:
        async with client.stream("GET", path) as response:
            self.status = response.status_code
            name, data = "message", ""
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data = line.removeprefix("data: ")
                elif line == "" and data:
                    self.events.append((name, json.loads(data)))
                    name, data = "message", ""

    @property
    def ended(self) -> bool:
        return self._task.done()

    def __repr__(self) -> str:
        return f"EventReader(events={self.events}, comments={self.comments})"

    async def until(self, predicate: Callable[[EventReader], bool], within: float = 10.0) -> None:
        """Wait until `predicate(self)` holds; fail at once if the stream ended without it."""

        def probe() -> EventReader:
            if self._task.done() and not predicate(self):
                self._task.result()  # raise what broke the stream, if anything
                raise AssertionError(f"stream ended early: {self.events}")
            return self

        await eventually(probe, predicate, within=within, what="the stream state")

    async def finished(self, within: float = 10.0) -> None:
        await asyncio.wait_for(self._task, within)


async def test_the_stream_follows_progress_live_and_ends_with_the_terminal_event(jobs_gateway) -> None:
    gw = await jobs_gateway()
    async with httpx.AsyncClient(base_url=await gw.serve(), timeout=30) as http:
        job_id = (await http.post("/v1/jobs/images", json=IMAGE)).json()["id"]
        reader = EventReader(http, f"/v1/jobs/{job_id}/events")
        await reader.until(lambda r: r.events)
        assert reader.status == 200 and reader.events[0][0] == "progress" and reader.events[0][1]["status"] == "queued"
        for progress in (25, 70):
            await gw.worker.report(job_id, events_pb2.JOB_STATE_RUNNING, progress, stage="denoising")
            await reader.until(lambda r, p=progress: r.events[-1][1]["progress"] == p)
        assert not reader.ended
        gw.worker.store_png(f"images/{job_id}/0.png", (64, 64))
        await gw.worker.report(job_id, events_pb2.JOB_STATE_SUCCEEDED, 100, result_keys=[f"images/{job_id}/0.png"])
        await reader.finished()
    names = [name for name, _ in reader.events]
    assert names[:-1] == ["progress"] * (len(names) - 1) and names[-1] == "succeeded"
    progress = [data["progress"] for _, data in reader.events]
    assert progress == sorted(progress) and progress[-1] == 100
    assert reader.events[-1][1]["results"] == [{"index": 0, "url": f"/v1/jobs/{job_id}/images/0"}]


async def test_a_finished_job_streams_one_terminal_event(jobs_gateway) -> None:
    gw = await jobs_gateway()
    async with httpx.AsyncClient(base_url=await gw.serve(), timeout=30) as http:
        job_id = (await http.post("/v1/jobs/images", json=IMAGE)).json()["id"]
        await http.delete(f"/v1/jobs/{job_id}")
        reader = EventReader(http, f"/v1/jobs/{job_id}/events")
        await reader.finished()
    assert [(name, data["status"]) for name, data in reader.events] == [("cancelled", "cancelled")]


async def test_an_idle_stream_sends_keepalives_then_ends_when_the_job_is_cancelled(jobs_gateway) -> None:
    gw = await jobs_gateway(jobs_sse_keepalive_seconds=0.2)
    async with httpx.AsyncClient(base_url=await gw.serve(), timeout=30) as http:
        job_id = (await http.post("/v1/jobs/images", json=IMAGE)).json()["id"]
        reader = EventReader(http, f"/v1/jobs/{job_id}/events")
        await reader.until(lambda r: len(r.comments) >= 2)
        assert set(reader.comments) == {": keepalive"} and len(reader.events) == 1
        assert (await http.delete(f"/v1/jobs/{job_id}")).status_code == 200
        await reader.finished()
    assert reader.events[-1][0] == "cancelled"


async def test_a_stream_on_another_replica_catches_up_by_polling(jobs_gateway) -> None:
    """An update another gateway replica applied (no wake-up in this process) still reaches the stream."""
    gw = await jobs_gateway(jobs_sse_poll_seconds=0.1)
    async with httpx.AsyncClient(base_url=await gw.serve(), timeout=30) as http:
        job_id = (await http.post("/v1/jobs/images", json=IMAGE)).json()["id"]
        reader = EventReader(http, f"/v1/jobs/{job_id}/events")
        await reader.until(lambda r: r.events)
        other_replica = JobStore(gw.resources.sessions)  # the shared database, no in-process wake-up
        await other_replica.apply(ProgressReport(job_id, JobState.RUNNING, 40))
        await reader.until(lambda r: r.events[-1][1]["progress"] == 40, within=5)
        await other_replica.apply(ProgressReport(job_id, JobState.FAILED, reason="worker lost"))
        await reader.finished()
    assert reader.events[-1][0] == "failed" and reader.events[-1][1]["error"] == {"message": "worker lost"}
