"""Image jobs through the gateway API: submit, validate, idempotency, status, results, cancel.

The app runs through its real lifespan (SQLite, RabbitMQ in a throw-away vhost, the `job.progress`
consumer); a FakeImageWorker plays imagegen on the broker.
"""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import update

from gateway.clock import utcnow
from gateway.jobs.domain import Kind, NewJob
from gateway.jobs.store import JobStore
from gateway.jobs.tables import JobRow
from genai.events.v1 import events_pb2
from tests.support.eventually import eventually

IMAGE = {"prompt": "a lighthouse at dusk", "n": 2, "size": "64x64", "steps": 3, "seed": 7}
RUNNING, SUCCEEDED, FAILED = events_pb2.JOB_STATE_RUNNING, events_pb2.JOB_STATE_SUCCEEDED, events_pb2.JOB_STATE_FAILED


async def deliver(gw, job_id: str, state: int, progress: int = 0, **fields) -> None:
    """What the gateway's `job.progress` consumer does with one event, synchronously."""
    event = events_pb2.JobProgress(job_id=job_id, kind=events_pb2.JOB_KIND_IMAGE, state=state, progress=progress,
                                   **fields)
    await gw.resources.progress.dispatch(event)


async def submit(gw, body: dict | None = None, **headers: str) -> dict:
    reply = await gw.client.post("/v1/jobs/images", json=body or IMAGE, headers=headers)
    assert reply.status_code == 202, reply.text
    return reply.json()


async def test_image_job_is_queued_at_once_and_published_with_its_parameters(jobs_gateway) -> None:
    gw = await jobs_gateway()
    job = await submit(gw)
    assert (job["status"], job["progress"], job["kind"]) == ("queued", 0, "image")
    assert job["params"] == {"prompt": IMAGE["prompt"], "negative_prompt": "", "n": 2, "size": "64x64", "width": 64,
                             "height": 64, "steps": 3, "guidance": 5.0, "seed": 7}
    assert (await gw.job(job["id"]))["status"] == "queued"
    [published] = await gw.worker.requests()
    assert (published.job_id, published.n, published.width, published.steps, published.seed) == (job["id"], 2, 64, 3, 7)


async def test_a_missing_seed_is_drawn_and_recorded(jobs_gateway) -> None:
    gw = await jobs_gateway()
    body = {key: value for key, value in IMAGE.items() if key != "seed"}
    first, second = await submit(gw, body), await submit(gw, body)
    assert isinstance(first["params"]["seed"], int) and first["params"]["seed"] != second["params"]["seed"]
    published = {event.job_id: event.seed for event in await gw.worker.requests()}
    assert published == {first["id"]: first["params"]["seed"], second["id"]: second["params"]["seed"]}


@pytest.mark.parametrize(("change", "param"), [
    ({"n": 9}, "n"), ({"n": 0}, "n"), ({"size": "100x100"}, "size"), ({"size": "big"}, "size"),
    ({"steps": 101}, "steps"), ({"steps": 0}, "steps"), ({"prompt": ""}, "prompt"), ({"seed": -1}, "seed"),
    ({"guidance": -1}, "guidance"), ({"colour": "red"}, "colour"),
])
async def test_invalid_fields_are_422_naming_the_field_and_queue_nothing(jobs_gateway, change, param) -> None:
    gw = await jobs_gateway()
    reply = await gw.client.post("/v1/jobs/images", json={**IMAGE, **change})
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["param"] == param
    assert await gw.worker.requests() == []


@pytest.mark.parametrize("prompt", ["a FORBIDDEN castle", "forbidden", "a bad  phrase? no: a Bad Phrase!"])
async def test_blocked_terms_are_refused_with_400_before_anything_is_queued(jobs_gateway, prompt) -> None:
    gw = await jobs_gateway()
    reply = await gw.client.post("/v1/jobs/images", json={**IMAGE, "prompt": prompt})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "prompt"
    assert (await gw.client.get("/v1/jobs")).json()["data"] == []
    assert await gw.worker.requests() == []


async def test_blocked_terms_match_whole_words_only(jobs_gateway) -> None:
    gw = await jobs_gateway()
    await submit(gw, {**IMAGE, "prompt": "the unforbidden forbiddenness of bad phrases"})
    assert len(await gw.worker.requests()) == 1


async def test_same_idempotency_key_and_body_give_the_same_job_and_one_message(jobs_gateway) -> None:
    gw = await jobs_gateway()
    first = await submit(gw, **{"Idempotency-Key": "key-1"})
    again = await gw.client.post("/v1/jobs/images", json=IMAGE, headers={"Idempotency-Key": "key-1"})
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert [e.job_id for e in await gw.worker.requests()] == [first["id"]]


async def test_same_idempotency_key_with_another_body_is_422(jobs_gateway) -> None:
    gw = await jobs_gateway()
    await submit(gw, **{"Idempotency-Key": "key-2"})
    reply = await gw.client.post("/v1/jobs/images", json={**IMAGE, "n": 3}, headers={"Idempotency-Key": "key-2"})
    assert reply.status_code == 422 and reply.json()["error"]["code"] == "idempotency_key_reused"
    assert len(await gw.worker.requests()) == 1


async def test_concurrent_requests_with_one_key_make_one_job(jobs_gateway) -> None:
    gw = await jobs_gateway()
    replies = await asyncio.gather(*(
        gw.client.post("/v1/jobs/images", json=IMAGE, headers={"Idempotency-Key": "key-3"}) for _ in range(8)))
    assert {r.status_code for r in replies} <= {200, 202}
    assert [r.status_code for r in replies].count(202) == 1
    assert len({r.json()["id"] for r in replies}) == 1
    assert len(await gw.worker.requests()) == 1


async def test_unknown_ids_say_not_found(jobs_gateway) -> None:
    gw = await jobs_gateway()
    job = await submit(gw)
    listed = (await gw.client.get("/v1/jobs", params={"ids": f"nope-1,{job['id']},nope-2"})).json()["data"]
    assert [(j["id"], j["status"]) for j in listed] == [("nope-1", "not_found"), (job["id"], "queued"),
                                                        ("nope-2", "not_found")]
    assert (await gw.client.get("/v1/jobs/nope")).status_code == 404
    assert (await gw.client.delete("/v1/jobs/nope")).status_code == 404
    assert (await gw.client.get("/v1/jobs/nope/events")).status_code == 404
    assert (await gw.client.get("/v1/jobs", params={"ids": ",".join(f"id{i}" for i in range(101))})).status_code == 422


async def test_progress_moves_forward_only_and_results_are_served_as_png(jobs_gateway) -> None:
    gw = await jobs_gateway()
    job_id = (await submit(gw))["id"]
    await gw.worker.report(job_id, RUNNING, 60, stage="denoising")  # through the broker
    await gw.until(job_id, lambda j: j["progress"] == 60)
    await deliver(gw, job_id, RUNNING, 30, stage="denoising")  # late and stale
    assert (await gw.job(job_id))["progress"] == 60
    keys = [f"images/{job_id}/0.png", f"images/{job_id}/1.png"]
    for key in keys:
        gw.worker.store_png(key, (64, 64))
    await gw.worker.report(job_id, SUCCEEDED, 100, result_keys=keys)
    done = await gw.until(job_id, lambda j: j["status"] == "succeeded")
    assert done["progress"] == 100 and done["finished_at"] >= done["started_at"]
    assert [r["url"] for r in done["results"]] == [f"/v1/jobs/{job_id}/images/0", f"/v1/jobs/{job_id}/images/1"]
    image = await gw.client.get(done["results"][1]["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).size == (64, 64)
    assert (await gw.client.get(f"/v1/jobs/{job_id}/images/2")).status_code == 404
    await deliver(gw, job_id, FAILED, reason="a redelivered attempt ran out of memory")  # after the end
    await deliver(gw, job_id, RUNNING, 10)
    await deliver(gw, job_id, SUCCEEDED, 100, result_keys=keys[:1])  # a duplicate with other keys
    final = await gw.job(job_id)
    assert (final["status"], final["progress"], final["error"], len(final["results"])) == ("succeeded", 100, None, 2)
    assert (await gw.client.delete(f"/v1/jobs/{job_id}")).status_code == 409


async def test_a_failed_job_says_why_and_has_no_images(jobs_gateway) -> None:
    gw = await jobs_gateway()
    job_id = (await submit(gw))["id"]
    await gw.worker.report(job_id, FAILED, reason="out of accelerator memory rendering 64x64; try a smaller size")
    failed = await gw.until(job_id, lambda j: j["status"] == "failed")
    assert "out of accelerator memory" in failed["error"]["message"] and failed["results"] == []
    assert (await gw.client.get(f"/v1/jobs/{job_id}/images/0")).status_code == 404
    assert (await gw.client.delete(f"/v1/jobs/{job_id}")).status_code == 409


async def test_cancel_a_queued_job_at_once_and_tell_the_workers(jobs_gateway) -> None:
    gw = await jobs_gateway()
    job_id = (await submit(gw))["id"]
    reply = await gw.client.delete(f"/v1/jobs/{job_id}")
    assert reply.status_code == 200 and reply.json()["status"] == "cancelled"
    assert (await gw.client.delete(f"/v1/jobs/{job_id}")).json()["status"] == "cancelled"  # idempotent
    await deliver(gw, job_id, RUNNING, 50)  # a worker that had not heard yet
    await deliver(gw, job_id, SUCCEEDED, 100, result_keys=[f"images/{job_id}/0.png"])
    assert (await gw.job(job_id))["status"] == "cancelled"
    heard: list[str] = []

    async def hear() -> list[str]:
        heard.extend(await gw.worker.cancels())
        return heard

    await eventually(hear, lambda ids: job_id in ids, within=5, what="the cancel broadcast")
    assert heard == [job_id]


async def test_a_refused_publish_is_503_and_leaves_no_job(jobs_gateway) -> None:
    gw = await jobs_gateway()
    await gw.worker.unbind()
    reply = await gw.client.post("/v1/jobs/images", json=IMAGE, headers={"Idempotency-Key": "key-4"})
    assert reply.status_code == 503
    assert (await gw.client.get("/v1/jobs")).json()["data"] == []
    await gw.worker.bind()  # the queue is back: the same key now works
    again = await gw.client.post("/v1/jobs/images", json=IMAGE, headers={"Idempotency-Key": "key-4"})
    assert again.status_code == 202


async def test_jobs_recorded_but_never_published_are_queued_at_start(jobs_gateway) -> None:
    gw = await jobs_gateway()
    store = JobStore(gw.resources.sessions)
    params = {"prompt": "p", "negative_prompt": "", "n": 1, "size": "64x64", "width": 64, "height": 64, "steps": 1,
              "guidance": 5.0, "seed": 1}
    await store.create([NewJob("stale-1", Kind.IMAGE, params), NewJob("fresh-1", Kind.IMAGE, params)], None)
    async with gw.resources.sessions.begin() as session:  # as if a gateway stopped two minutes ago
        await session.execute(update(JobRow).where(JobRow.id == "stale-1")
                              .values(created_at=utcnow() - timedelta(minutes=2)))
    restarted = await jobs_gateway()  # the next start, on the same database
    assert [e.job_id for e in await restarted.worker.requests()] == ["stale-1"]
    again = await jobs_gateway()
    assert await again.worker.requests() == []  # once only
