"""Image jobs end to end: the gateway and the imagegen worker as real processes, the real RabbitMQ
(a throw-away vhost), the tiny random-weight SDXL pipeline on the CPU through real diffusers.

What a user sees: a job of n images answers 202 at once, shows monotonic progress to 100, and
gives n PNGs of the requested size; a worker killed mid-job (kill -9) leaves a job that a new
worker completes with exactly n images; queued and running jobs can be cancelled; SIGTERM lets
the job in flight finish and exits 0; a burst of submissions is accepted at once and all finish.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support import rabbitmq
from tests.support.eventually import eventually
from tests.support.procs import Service, free_port, http_ok

pytestmark = pytest.mark.slow


class Stack:
    def __init__(self, root: Path, amqp_url: str) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.gateway_port, self.metrics_port = free_port(), free_port()
        self.env = {
            "AMQP_URL": amqp_url, "BLOB_STORE_URL": f"file://{self.blobs}",
            "DATABASE_URL": f"sqlite+aiosqlite:///{root}/gateway.db", "GATEWAY_PORT": str(self.gateway_port),
            "IMAGEGEN_MODEL": "tiny-random", "IMAGEGEN_METRICS_PORT": str(self.metrics_port),
            "JOBS_IMAGE_SIZES": "64x64,128x128", "JOBS_MAX_STEPS": "150", "SHUTDOWN_GRACE_SECONDS": "20",
            "LLM_BASE_URL": "", "GATEWAY_API_KEYS": "", "LOG_LEVEL": "INFO",
        }
        self.worker: Service | None = None
        self.gateway: Service | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.gateway_port}", timeout=30)

    def start_worker(self) -> Service:
        self.worker = Service("imagegen", self.env, self.root / "imagegen.log")
        self.worker.wait_until(lambda: http_ok(f"http://127.0.0.1:{self.metrics_port}/readyz"), timeout=180)
        return self.worker

    def start_gateway(self) -> None:
        self.gateway = Service("gateway", self.env, self.root / "gateway.log")
        self.gateway.wait_until(lambda: http_ok(f"http://127.0.0.1:{self.gateway_port}/readyz"), timeout=120)

    def submit(self, **body) -> dict:
        reply = self.http.post("/v1/jobs/images", json={"prompt": "a lighthouse at dusk", "size": "64x64", **body})
        assert reply.status_code == 202, reply.text
        return reply.json()

    def job(self, job_id: str) -> dict:
        return self.http.get(f"/v1/jobs/{job_id}").json()

    async def until(self, job_id: str, predicate: Callable[[dict], bool], within: float = 120.0) -> dict:
        try:
            return await eventually(lambda: self.job(job_id), predicate, within=within, every=0.05,
                                    what=f"job {job_id} in the state wanted")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.worker.tail() if self.worker else ''}") from None

    def stored(self, job_id: str) -> list[Path]:
        return sorted((self.blobs / "images" / job_id).glob("*.png"))

    def metric(self, name: str, labels: str = "") -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        line = next((ln for ln in text.splitlines() if ln.startswith(f"{name}{labels} ")), None)
        return float(line.split()[-1]) if line else 0.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    with rabbitmq.temporary_vhost("jobs-e2e") as amqp_url:
        stack = Stack(tmp_path_factory.mktemp("jobs-e2e"), amqp_url)
        try:
            stack.start_worker()
            stack.start_gateway()
            yield stack
        finally:
            stack.http.close()
            for service in (stack.gateway, stack.worker):
                if service is not None:
                    service.terminate()


def sse_events(stack: Stack, job_id: str) -> list[tuple[str, dict]]:
    events, name = [], "message"
    with stack.http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def test_a_job_of_three_images_gives_three_pngs_with_monotonic_progress(stack: Stack) -> None:
    job = stack.submit(n=3, steps=2, seed=42)
    assert job["status"] == "queued"
    events = sse_events(stack, job["id"])
    assert events[-1][0] == "succeeded" and all(name == "progress" for name, _ in events[:-1])
    progress = [data["progress"] for _, data in events]
    assert progress == sorted(progress) and progress[-1] == 100
    done = stack.job(job["id"])
    assert done["status"] == "succeeded" and done["params"]["seed"] == 42 and len(done["results"]) == 3
    for result in done["results"]:
        reply = stack.http.get(result["url"])
        assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(reply.content))
        assert image.format == "PNG" and image.size == (64, 64)
    assert len(stack.stored(job["id"])) == 3


async def test_a_worker_killed_mid_job_is_replaced_and_the_job_ends_with_exactly_n_images(stack: Stack) -> None:
    job = stack.submit(n=4, steps=50)
    await stack.until(job["id"], lambda j: j["progress"] >= 30)  # at least one image stored, others not yet
    assert stack.job(job["id"])["status"] == "running"
    stack.worker.kill()
    assert 1 <= len(stack.stored(job["id"])) < 4
    stack.start_worker()
    done = await stack.until(job["id"], lambda j: j["status"] != "running")
    assert done["status"] == "succeeded" and len(done["results"]) == 4
    assert [p.name for p in stack.stored(job["id"])] == ["0.png", "1.png", "2.png", "3.png"]


async def test_queued_and_running_jobs_can_be_cancelled(stack: Stack) -> None:
    cancelled_before = stack.metric("imagegen_jobs_total", '{outcome="cancelled"}')
    running = stack.submit(n=2, steps=150)
    waiting = stack.submit(n=2, steps=2)
    await stack.until(running["id"], lambda j: j["status"] == "running" and j["progress"] > 0)
    reply = stack.http.delete(f"/v1/jobs/{waiting['id']}")
    assert reply.status_code == 200 and reply.json()["status"] == "cancelled"
    reply = stack.http.delete(f"/v1/jobs/{running['id']}")
    assert reply.status_code == 200 and reply.json()["status"] == "cancelled"
    after = stack.submit(n=1, steps=2)  # served as soon as the worker has stopped the cancelled ones
    assert (await stack.until(after["id"], lambda j: j["status"] == "succeeded", within=60))["progress"] == 100
    assert stack.metric("imagegen_jobs_total", '{outcome="cancelled"}') == cancelled_before + 2
    assert stack.stored(running["id"]) == [] and stack.stored(waiting["id"]) == []
    assert stack.job(running["id"])["status"] == stack.job(waiting["id"])["status"] == "cancelled"
    assert stack.http.delete(f"/v1/jobs/{after['id']}").status_code == 409


async def test_sigterm_lets_the_job_in_flight_finish_and_exits_0(stack: Stack) -> None:
    job = stack.submit(n=2, steps=30)
    await stack.until(job["id"], lambda j: j["status"] == "running" and j["progress"] > 0)
    assert stack.worker.terminate(timeout=60) == 0
    assert (await stack.until(job["id"], lambda j: j["status"] != "running", within=30))["status"] == "succeeded"
    assert len(stack.stored(job["id"])) == 2
    stack.start_worker()


async def test_a_burst_of_200_submissions_is_accepted_at_once_and_all_finish(stack: Stack) -> None:
    import concurrent.futures

    body = {"prompt": "a lighthouse at dusk", "size": "64x64", "n": 1, "steps": 1}
    with httpx.Client(base_url=str(stack.http.base_url), timeout=60,
                      limits=httpx.Limits(max_connections=50)) as client, \
            concurrent.futures.ThreadPoolExecutor(50) as pool:
        replies = list(pool.map(lambda _i: client.post("/v1/jobs/images", json=body), range(200)))
    assert [r.status_code for r in replies] == [202] * 200
    ids = [r.json()["id"] for r in replies]
    assert len(set(ids)) == 200

    def statuses() -> list[str]:
        return [j["status"] for half in (ids[:100], ids[100:])
                for j in stack.http.get("/v1/jobs", params={"ids": ",".join(half)}).json()["data"]]

    assert statuses().count("queued") > 100  # accepted long before the work is done
    await eventually(statuses, lambda seen: seen == ["succeeded"] * 200, within=300, every=0.5,
                     what="all 200 jobs succeeded")
