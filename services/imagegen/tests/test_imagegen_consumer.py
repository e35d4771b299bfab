"""The imagegen worker's queue against the real RabbitMQ, wired as `python -m imagegen` wires it:
a job whose storage keeps failing is retried, then given up: reported failed with the reason,
and dead-lettered; its wait in the queue is measured once, from its submission."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from prometheus_client import REGISTRY

from genai.events.v1 import events_pb2
from genai_common.amqp import IMAGE_JOB_REQUESTED, JOB_PROGRESS, Amqp
from genai_common.errors import Unavailable
from imagegen.app import queue_spec, start_consuming
from imagegen.consumer import AmqpProgressSink
from imagegen.renderer import Renderer
from imagegen.runner import ImageJobRunner
from imagegen.settings import ImagegenSettings
from tests.support.eventually import eventually

ATTEMPTS = 2


class UnmountedBlobs:
    """A blob store whose volume is gone: every call fails as the real one would."""

    def __init__(self) -> None:
        self.calls = 0

    async def exists(self, key: str) -> bool:
        self.calls += 1
        raise Unavailable("blob store: the volume is not mounted")

    async def put(self, key: str, data: bytes) -> None:
        raise Unavailable("blob store: the volume is not mounted")

    async def delete(self, key: str) -> None:
        raise Unavailable("blob store: the volume is not mounted")


@pytest.fixture
async def broker(rabbit_url: str) -> AsyncIterator[tuple[Amqp, aio_pika.abc.AbstractChannel, ImagegenSettings]]:
    settings = ImagegenSettings(amqp_url=rabbit_url, imagegen_queue=f"test.imagegen.{uuid.uuid4().hex[:8]}",
                                imagegen_retry_attempts=ATTEMPTS)
    async with Amqp(rabbit_url, name="imagegen-test") as amqp, await aio_pika.connect(rabbit_url) as connection:
        channel = await connection.channel()
        yield amqp, channel, settings
        await amqp.stop_consumers(1.0)
        spec = queue_spec(settings)
        for queue in (spec.name, spec.dead_letter_queue, *map(spec.retry_queue, spec.retry.tiers())):
            await channel.queue_delete(queue)


async def test_a_job_whose_storage_keeps_failing_is_given_up_reported_failed_and_dead_lettered(
        broker: tuple[Amqp, aio_pika.abc.AbstractChannel, ImagegenSettings], tiny_renderer: Renderer) -> None:
    amqp, channel, settings = broker
    progress = await channel.declare_queue(exclusive=True)
    await progress.bind("genai.events", routing_key=JOB_PROGRESS)
    blobs = UnmountedBlobs()
    runner = ImageJobRunner(tiny_renderer, blobs, AmqpProgressSink(amqp))
    await start_consuming(amqp, runner, settings)

    job_id = f"job-{uuid.uuid4().hex[:8]}"
    request = events_pb2.ImageJobRequested(job_id=job_id, prompt="a lighthouse", n=1, width=64, height=64, steps=1,
                                           guidance=5.0, seed=1)
    request.submitted_at.FromSeconds(int(time.time()) - 20)  # submitted 20 s ago
    waits_before = _wait_samples()
    await amqp.publish(IMAGE_JOB_REQUESTED, request, message_id=job_id, headers={"job_id": job_id})

    async def next_update() -> events_pb2.JobProgress | None:
        message = await progress.get(fail=False, no_ack=True)
        return None if message is None else events_pb2.JobProgress.FromString(message.body)

    update = await eventually(next_update, lambda event: event is not None, within=30, what="a job.progress event")
    assert update is not None and update.job_id == job_id
    assert update.state == events_pb2.JOB_STATE_FAILED
    assert update.reason.startswith(f"gave up after {ATTEMPTS} attempts")
    assert update.reason.endswith("blob store: the volume is not mounted")
    assert blobs.calls == ATTEMPTS

    dead_letters = await channel.get_queue(queue_spec(settings).dead_letter_queue)
    dead = await eventually(lambda: dead_letters.get(fail=False, no_ack=True), lambda message: message is not None,
                            what="the job's message dead-lettered")
    assert dead is not None and dead.message_id == job_id
    count, total = _wait_samples()
    assert count == waits_before[0] + 1 and 19 <= total - waits_before[1] < 60  # retries are not queue waits


def _wait_samples() -> tuple[float, float]:
    return (REGISTRY.get_sample_value("imagegen_queue_wait_seconds_count") or 0.0,
            REGISTRY.get_sample_value("imagegen_queue_wait_seconds_sum") or 0.0)
