"""Shutdown: once the gateway is told to stop (SIGTERM, `gateway.draining`), it is not ready and
every open job event stream ends at once with a `reconnect` event; the job itself goes on.
(The real process under SIGTERM: tests/faults.)"""

from __future__ import annotations

import httpx
from test_jobs_events import IMAGE, EventReader


async def test_draining_ends_open_event_streams_with_a_reconnect_event_and_fails_readiness(jobs_gateway) -> None:
    gw = await jobs_gateway()
    async with httpx.AsyncClient(base_url=await gw.serve(), timeout=30) as http:
        job_ids = [(await http.post("/v1/jobs/images", json=IMAGE)).json()["id"] for _ in range(3)]
        readers = [EventReader(http, f"/v1/jobs/{job_id}/events") for job_id in job_ids]
        for reader in readers:
            await reader.until(lambda r: r.events)
        gw.app.state.draining.begin()
        for reader in readers:
            await reader.finished()
            assert [name for name, _ in reader.events] == ["progress", "reconnect"]
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["serving"] is False
        # The jobs are untouched: still queued for their worker.
        assert {(await http.get(f"/v1/jobs/{j}")).json()["status"] for j in job_ids} == {"queued"}
