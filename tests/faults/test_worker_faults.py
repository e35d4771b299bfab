"""The workers and the retriever under faults, with the real gateway, ingest, retriever (embedded
engine, real embedding model) and imagegen (tiny random pipeline, 64x64) on the private broker:

- the retriever down for 60 s while documents arrive: they wait (retried with back-off), nothing
  fails, and each ends indexed exactly once when it is back;
- SIGKILL of ingest and of imagegen at random points, ten times each: every accepted document
  indexed exactly once, every accepted image job with exactly n images (or failed with a reason);
- a CPU-heavy document that takes longer than three heartbeat intervals: no missed heartbeat, no
  reconnect, the worker's event-loop lag p99 under 100 ms (its `ingest_event_loop_lag_seconds`).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.faults.broker import PrivateBroker
from tests.faults.gateway_process import gateway, gateway_env, url_of
from tests.faults.platform import (
    BOUNDARY,
    IMAGE,
    RetrieverProcess,
    Workers,
    document_effects,
    document_records,
    image_effects,
    image_records,
    upload_text,
)
from tests.faults.tally import Tally
from tests.support.eventually import eventually

pytestmark = pytest.mark.faults

RETRIEVER_DOWN_SECONDS = 60.0
KILLS = 10
UPLOADS_PER_KILL = 12
JOBS_PER_KILL = 3
HEARTBEAT_SECONDS = 1


def _terminal(records: dict[str, dict], done: set[str]) -> bool:
    return all(r.get("status") in done for r in records.values())


def _metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_retriever_down_for_a_minute_during_ingest(workers: Workers, vhost_url: str, tmp_path: Path) -> None:
    own = RetrieverProcess(tmp_path, "retriever-down").start()  # the session's retriever stays up
    workers.retriever_addr = own.addr
    # A short Index deadline: calls fail fast while the retriever is down and are retried with back-off.
    workers.overrides["INGEST_INDEX_DEADLINE_SECONDS"] = "5"
    workers.start_ingest()
    env = gateway_env(tmp_path, vhost_url, retriever_addr=own.addr)
    docs = Tally()
    try:
        with gateway(env, tmp_path / "gateway.log"):
            async with httpx.AsyncClient(base_url=url_of(env), timeout=15) as client:
                for _ in range(5):
                    await docs.send(lambda: upload_text(client))
                await eventually(lambda: document_records(client, docs.accepted),
                                 lambda r: _terminal(r, {"indexed"}), within=60, what="the first documents indexed")
                own.stop()
                down_at = time.monotonic()
                for _ in range(30):
                    await docs.send(lambda: upload_text(client))
                    await asyncio.sleep(0.5)
                await asyncio.sleep(max(0.0, RETRIEVER_DOWN_SECONDS - (time.monotonic() - down_at)))
                during = await document_records(client, docs.accepted)
                own.start()
                back_at = time.monotonic()
                final = await eventually(lambda: document_records(client, docs.accepted),
                                         lambda r: _terminal(r, {"indexed", "failed"}), within=240, every=1,
                                         what="every document indexed once the retriever is back")
                caught_up = time.monotonic() - back_at
            metrics = workers.metrics(workers.ingest_metrics_port)
        lost, duplicated = document_effects(final, own)
    finally:
        own.stop()
    failed_during = sum(r.get("status") == "failed" for r in during.values())
    retried = _metric(metrics, "ingest_documents_total", '{outcome="retried"}')
    print(f"\n[retriever down] injected: the retriever stopped for {RETRIEVER_DOWN_SECONDS:g} s while 30 documents "
          f"were uploaded | uploads {docs.summary()} | failed during the outage: {failed_during} | Index attempts "
          f"retried with back-off: {retried:g} | all indexed {caught_up:.1f} s after it came back | documents "
          f"checked in the store: {len(final)}, lost: {lost}, duplicated chunks: {duplicated}")
    assert docs.other == [] and docs.unanswered == 0 and len(docs.accepted) == 35
    assert failed_during == 0 and lost == duplicated == 0 and retried > 0


async def _feed_and_kill(kill, restart, send, rng: random.Random, rounds: int, count: int,
                         spacing: float) -> list[float]:
    """`rounds` times: `count` requests `spacing` s apart, SIGKILL at a random point among them,
    then the worker started again; returns when each kill happened in its round (s)."""
    points = []
    for _ in range(rounds):
        at = rng.uniform(0.3, count * spacing + 1.0)
        points.append(at)

        async def killer(at: float = at) -> None:
            await asyncio.sleep(at)
            await asyncio.to_thread(kill)

        async def one(i: int) -> None:
            await asyncio.sleep(i * spacing)
            await send()

        await asyncio.gather(killer(), *(one(i) for i in range(count)))
        await asyncio.to_thread(restart)
    return points


async def test_sigkill_of_ingest_at_random_points(workers: Workers, retriever: RetrieverProcess, vhost_url: str,
                                                  tmp_path: Path) -> None:
    rng = random.Random(1301)
    workers.start_ingest()
    env = gateway_env(tmp_path, vhost_url, retriever_addr=retriever.addr)
    docs = Tally()
    with gateway(env, tmp_path / "gateway.log"):
        async with httpx.AsyncClient(base_url=url_of(env), timeout=15) as client:
            # Longer documents (about 3 chunks each), so a kill lands in the middle of one.
            points = await _feed_and_kill(lambda: workers.ingest.kill(), workers.start_ingest,  # type: ignore[union-attr]
                                          lambda: docs.send(lambda: upload_long_text(client)), rng, KILLS,
                                          UPLOADS_PER_KILL, 0.25)
            final = await eventually(lambda: document_records(client, docs.accepted),
                                     lambda r: _terminal(r, {"indexed", "failed"}), within=360, every=1,
                                     what="every accepted document indexed")
    lost, duplicated = document_effects(final, retriever)
    chunks = sum(r.get("chunks") or 0 for r in final.values())
    print(f"\n[SIGKILL ingest] injected: {KILLS} x SIGKILL of ingest at {', '.join(f'{p:.1f}' for p in points)} s "
          f"into rounds of {UPLOADS_PER_KILL} uploads | uploads {docs.summary()} | documents checked in the store: "
          f"{len(final)} ({chunks} chunks), lost: {lost}, duplicated chunks: {duplicated}")
    assert docs.other == [] and docs.unanswered == 0 and len(docs.accepted) == KILLS * UPLOADS_PER_KILL
    assert lost == duplicated == 0


async def test_sigkill_of_imagegen_at_random_points(workers: Workers, vhost_url: str, tmp_path: Path) -> None:
    rng = random.Random(1302)
    workers.start_imagegen()
    env = gateway_env(tmp_path, vhost_url)
    jobs = Tally()
    job = {**IMAGE, "steps": 8}  # long enough that a kill lands in the middle of one
    with gateway(env, tmp_path / "gateway.log"):
        async with httpx.AsyncClient(base_url=url_of(env), timeout=15) as client:
            points = await _feed_and_kill(lambda: workers.imagegen.kill(),  # type: ignore[union-attr]
                                          workers.start_imagegen,
                                          lambda: jobs.send(lambda: client.post("/v1/jobs/images", json=job)),
                                          rng, KILLS, JOBS_PER_KILL, 0.5)
            final = await eventually(lambda: image_records(client, jobs.accepted),
                                     lambda r: _terminal(r, {"succeeded", "failed"}), within=240, every=1,
                                     what="every accepted image job finished")
    lost, duplicated, failed = image_effects(final, tmp_path / "blobs")
    print(f"\n[SIGKILL imagegen] injected: {KILLS} x SIGKILL of imagegen at {', '.join(f'{p:.1f}' for p in points)} s "
          f"into rounds of {JOBS_PER_KILL} jobs | jobs {jobs.summary()} | image jobs checked in the blob store: "
          f"{len(final)}, lost: {lost}, duplicated images: {duplicated}, failed with a reason: {failed}")
    assert jobs.other == [] and jobs.unanswered == 0 and len(jobs.accepted) == KILLS * JOBS_PER_KILL
    assert lost == duplicated == 0


def long_text(marker: str) -> str:
    return " ".join(f"Entry {i} of log {marker}: the buoy {i % 17} reported a swell of {i % 5} metres and a "
                    f"water temperature of {10 + i % 9} degrees." for i in range(20))


async def upload_long_text(client: httpx.AsyncClient) -> httpx.Response:
    return await _post_text(client, long_text(uuid.uuid4().hex))


async def _post_text(client: httpx.AsyncClient, text: str) -> httpx.Response:
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="log.txt"\r\n'
            f"Content-Type: text/plain\r\n\r\n").encode()
    body = head + text.encode() + f"\r\n--{BOUNDARY}--\r\n".encode()
    return await client.post("/v1/documents", content=body,
                             headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
                             timeout=120)


def heavy_text(megabytes: int) -> str:
    """Mostly whitespace and invisible characters between short sentences: megabytes of text to
    normalise and clean, about a hundred chunks to embed."""
    padding = ("\t \u200b \u00a0 " * 1000 + "\n") * 2
    sentences = []
    size = 0
    i = 0
    while size < megabytes * 1024 * 1024:
        sentence = f"Reading {i}: the gauge at pier {i % 11} showed {i % 7} metres of tide at dawn. "
        sentences.append(sentence + padding)
        size += len(sentence) + len(padding)
        i += 1
    return "".join(sentences)


async def test_a_cpu_heavy_document_keeps_the_worker_heartbeating(
        broker: PrivateBroker, workers: Workers, retriever: RetrieverProcess, vhost_url: str, tmp_path: Path) -> None:
    vhost = vhost_url.rsplit("/", 1)[1]
    workers.amqp_url = f"{vhost_url}?heartbeat={HEARTBEAT_SECONDS}"
    workers.start_ingest()
    env = gateway_env(tmp_path, vhost_url, retriever_addr=retriever.addr)
    text = heavy_text(20)
    with gateway(env, tmp_path / "gateway.log"):
        async with httpx.AsyncClient(base_url=url_of(env), timeout=15) as client:
            before_connections = [c for c in broker.connections(vhost) if c[0] == "ingest"]
            before = workers.metrics(workers.ingest_metrics_port)
            reply = await _post_text(client, text)
            assert reply.status_code == 202, reply.text
            final = await eventually(lambda: document_records(client, [reply.json()["id"]]),
                                     lambda r: _terminal(r, {"indexed", "failed"}), within=240, every=0.5,
                                     what="the heavy document indexed")
            after = workers.metrics(workers.ingest_metrics_port)
            after_connections = [c for c in broker.connections(vhost) if c[0] == "ingest"]
    record = next(iter(final.values()))
    worked = sum((record.get("stage_seconds") or {}).values())
    lag = "ingest_event_loop_lag_seconds"
    samples = _metric(after, f"{lag}_count") - _metric(before, f"{lag}_count")

    def within(le: str) -> float:
        return _metric(after, f"{lag}_bucket", f'{{le="{le}"}}') - _metric(before, f"{lag}_bucket", f'{{le="{le}"}}')

    late = samples - within("0.1")
    worst = next((le for le in ("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0",
                                "2.5", "5.0", "10.0") if within(le) >= samples), "+Inf")
    missed = len(re.findall(r"missed heartbeats", broker.node_log()))
    lost, duplicated = document_effects(final, retriever)
    print(f"\n[CPU-heavy document] injected: a {len(text) / 2**20:.0f} MiB text document, heartbeat "
          f"{HEARTBEAT_SECONDS} s | the worker spent {worked:.1f} s on it ({record.get('chunks')} chunks; "
          f"{record.get('stage_seconds')}) | "
          f"event-loop lag samples: {samples:g}, over 100 ms: {late:g} ({late / max(samples, 1):.1%}), the worst "
          f"under {worst} s | missed heartbeats: {missed} | ingest connections before {before_connections}, after "
          f"{after_connections} | lost: {lost}, duplicated: {duplicated}")
    assert record.get("status") == "indexed" and worked > 3 * HEARTBEAT_SECONDS
    assert before_connections == after_connections and len(after_connections) == 1
    assert after_connections[0][2] == str(HEARTBEAT_SECONDS)
    assert missed == 0 and samples > 0 and late / samples <= 0.01
    assert lost == duplicated == 0
