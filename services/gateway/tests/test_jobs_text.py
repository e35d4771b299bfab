"""Batch text: one job per prompt, answered by the LLM (FakeLLM) in the background, a bounded
number at a time; status of all of them at once."""

from __future__ import annotations

import asyncio

from tests.support import rabbitmq
from tests.support.eventually import eventually

PROMPTS = ["What is a lighthouse?", "Name a colour.", "Count to three.", "Say hello."]


async def statuses(gw, ids: list[str]) -> list[str]:
    reply = await gw.client.get("/v1/jobs", params={"ids": ",".join(ids)})
    return [job["status"] for job in reply.json()["data"]]


async def submit(gw, prompts: list[str], **extra) -> list[dict]:
    reply = await gw.client.post("/v1/jobs/text", json={"prompts": prompts, "max_tokens": 32, **extra})
    assert reply.status_code == 202, reply.text
    return reply.json()["data"]


async def test_each_prompt_becomes_a_job_answered_in_the_background(jobs_gateway, fake_llm) -> None:
    gw = await jobs_gateway()
    jobs = await submit(gw, PROMPTS[:2], temperature=0.2)
    assert [(j["kind"], j["status"], j["params"]["prompt"]) for j in jobs] == [
        ("text", "queued", PROMPTS[0]), ("text", "queued", PROMPTS[1])]
    ids = [j["id"] for j in jobs]

    await eventually(lambda: statuses(gw, ids), lambda seen: seen == ["succeeded"] * 2, what="both jobs done")
    answers = (await gw.client.get("/v1/jobs", params={"ids": ",".join(ids)})).json()["data"]
    assert [a["output_text"] for a in answers] == ["Fake answer. Sources seen: none."] * 2
    assert all(a["progress"] == 100 for a in answers)
    sent = sorted(r.messages[-1]["content"] for r in fake_llm.chat_requests())
    assert sent == sorted(PROMPTS[:2])
    assert {r.body["max_tokens"] for r in fake_llm.chat_requests()} == {32}


async def test_with_three_workers_a_fourth_prompt_waits_queued(jobs_gateway, fake_llm) -> None:
    gw = await jobs_gateway(text_job_concurrency=3)
    fake_llm.held.set()
    ids = [j["id"] for j in await submit(gw, PROMPTS)]

    await eventually(lambda: len(fake_llm.chat_requests()), lambda n: n == 3, what="three prompts at the LLM")
    seen = await statuses(gw, ids)
    assert sorted(seen) == ["queued", "running", "running", "running"]
    assert len(fake_llm.chat_requests()) == 3  # still: the fourth is not sent while three are out
    fake_llm.held.clear()

    await eventually(lambda: statuses(gw, ids), lambda seen: seen == ["succeeded"] * 4, what="all four jobs done")
    assert len(fake_llm.chat_requests()) == 4


async def test_a_cancelled_queued_text_job_is_skipped(jobs_gateway, fake_llm) -> None:
    gw = await jobs_gateway(text_job_concurrency=1)
    fake_llm.held.set()
    first, second = (j["id"] for j in await submit(gw, PROMPTS[:2]))

    await eventually(lambda: len(fake_llm.chat_requests()), lambda n: n == 1, what="the first prompt at the LLM")
    reply = await gw.client.delete(f"/v1/jobs/{second}")
    assert reply.status_code == 200 and reply.json()["status"] == "cancelled"
    fake_llm.held.clear()

    await eventually(lambda: statuses(gw, [first]), lambda seen: seen == ["succeeded"], what="the first job done")
    settings = gw.resources.settings
    await eventually(lambda: asyncio.to_thread(rabbitmq.queue_depth, settings.amqp_url, settings.text_job_queue),
                     lambda depth: depth == 0, what="the text job queue drained")
    assert await statuses(gw, [second]) == ["cancelled"]
    assert [r.messages[-1]["content"] for r in fake_llm.chat_requests()] == [PROMPTS[0]]


async def test_an_llm_refusal_fails_the_job_with_the_reason(jobs_gateway, fake_llm) -> None:
    gw = await jobs_gateway()
    fake_llm.fail_status = 400
    [job] = await submit(gw, PROMPTS[:1])
    await gw.until(job["id"], lambda j: j["status"] == "failed")
    failed = await gw.job(job["id"])
    assert "refused" in failed["error"]["message"] and failed["output_text"] is None
    assert len(fake_llm.chat_requests()) == 1  # a refusal is not retried


async def test_an_unavailable_llm_is_retried_then_the_job_fails(jobs_gateway, fake_llm) -> None:
    gw = await jobs_gateway(text_job_retry_attempts=2)
    fake_llm.fail_status = 503
    [job] = await submit(gw, PROMPTS[:1])
    failed = await gw.until(job["id"], lambda j: j["status"] == "failed", within=20)
    assert "unavailable" in failed["error"]["message"] and "after 2 attempts" in failed["error"]["message"]
    assert len(fake_llm.chat_requests()) == 2


async def test_without_an_llm_text_jobs_are_refused_at_once(jobs_gateway) -> None:
    gw = await jobs_gateway(llm=False)
    reply = await gw.client.post("/v1/jobs/text", json={"prompts": PROMPTS})
    assert reply.status_code == 503 and "LLM_BASE_URL" in reply.json()["error"]["message"]
    assert (await gw.client.get("/v1/jobs")).json()["data"] == []


async def test_text_batches_are_validated_filtered_and_idempotent(jobs_gateway, fake_llm) -> None:
    gw = await jobs_gateway(jobs_max_text_prompts=3)
    fake_llm.held.set()
    too_many = await gw.client.post("/v1/jobs/text", json={"prompts": PROMPTS})
    assert too_many.status_code == 422 and too_many.json()["error"]["param"] == "prompts"
    empty = await gw.client.post("/v1/jobs/text", json={"prompts": []})
    assert empty.status_code == 422 and empty.json()["error"]["param"] == "prompts"
    blocked = await gw.client.post("/v1/jobs/text", json={"prompts": ["fine", "a Forbidden one"]})
    assert blocked.status_code == 400 and blocked.json()["error"]["param"] == "prompts.1"
    headers = {"Idempotency-Key": "batch-1"}
    first = await gw.client.post("/v1/jobs/text", json={"prompts": PROMPTS[:2]}, headers=headers)
    again = await gw.client.post("/v1/jobs/text", json={"prompts": PROMPTS[:2]}, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert [j["id"] for j in again.json()["data"]] == [j["id"] for j in first.json()["data"]]
    other = await gw.client.post("/v1/jobs/text", json={"prompts": PROMPTS[:1]}, headers=headers)
    assert other.status_code == 422
    assert len((await gw.client.get("/v1/jobs")).json()["data"]) == 2
    fake_llm.held.clear()
