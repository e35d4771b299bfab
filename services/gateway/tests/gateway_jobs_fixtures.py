"""Fixtures of the jobs tests: the whole app (SQLite, RabbitMQ in a throw-away vhost, the
`job.progress` consumer, the batch-text consumer when an LLM is set) and a FakeImageWorker that
plays imagegen on the broker."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import pytest
from gateway_harness import Gateway, gateway_settings
from google.protobuf.message import Message
from PIL import Image

from genai.events.v1 import events_pb2
from genai_common.amqp import Amqp, QueueSpec
from tests.fakes.fake_llm import FakeLLM
from tests.support.eventually import eventually

IMAGE_QUEUE = QueueSpec("imagegen.image-jobs", ("image.job.requested",))
M = TypeVar("M", bound=Message)


class FakeImageWorker:
    """Stands in for an imagegen replica: takes `image.job.requested` off the work queue, hears
    `job.cancel.requested` on its own queue, and reports `job.progress` the way imagegen does."""

    def __init__(self, amqp_url: str, blob_root: Path) -> None:
        self._url = amqp_url
        self._amqp = Amqp(amqp_url, name="fake-imagegen")
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._blob_root = blob_root
        self._jobs: aio_pika.abc.AbstractQueue | None = None
        self._cancels: aio_pika.abc.AbstractQueue | None = None

    async def start(self) -> FakeImageWorker:
        await self._amqp.connect()
        await self.bind()
        self._connection = await aio_pika.connect(self._url)
        channel = await self._connection.channel()
        self._cancels = await channel.declare_queue(f"fake-imagegen.cancel.{uuid.uuid4().hex[:8]}", exclusive=True)
        await self._cancels.bind("genai.events", routing_key="job.cancel.requested")
        return self

    async def bind(self) -> None:
        """Declare the work queue (as imagegen does) and empty it of earlier tests' jobs."""
        self._jobs = await self._amqp.declare_queue(IMAGE_QUEUE)
        await self._jobs.purge()

    async def unbind(self) -> None:
        """Delete the work queue: `image.job.requested` becomes unroutable (as with no imagegen deployed)."""
        assert self._jobs is not None
        await self._jobs.delete(if_unused=False, if_empty=False)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
        await self._amqp.close()

    @staticmethod
    async def _drain(queue: aio_pika.abc.AbstractQueue, cls: type[M]) -> list[M]:
        events = []
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            event = cls()
            event.ParseFromString(message.body)
            events.append(event)
        return events

    async def requests(self) -> list[events_pb2.ImageJobRequested]:
        """Every image job published since the last call."""
        assert self._jobs is not None
        return await self._drain(self._jobs, events_pb2.ImageJobRequested)

    async def cancels(self) -> list[str]:
        """The ids of every cancel broadcast since the last call."""
        assert self._cancels is not None
        return [e.job_id for e in await self._drain(self._cancels, events_pb2.JobCancelRequested)]

    async def report(self, job_id: str, state: int, progress: int = 0, **fields: Any) -> None:
        event = events_pb2.JobProgress(job_id=job_id, kind=events_pb2.JOB_KIND_IMAGE, state=state,
                                       progress=progress, **fields)
        await self._amqp.publish("job.progress", event)

    def store_png(self, key: str, size: tuple[int, int]) -> None:
        path = self._blob_root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
        path.write_bytes(buffer.getvalue())


@dataclass
class JobsGateway(Gateway):
    worker: FakeImageWorker
    blob_root: Path

    async def job(self, job_id: str) -> dict[str, Any]:
        reply = await self.client.get(f"/v1/jobs/{job_id}")
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body

    async def until(self, job_id: str, predicate: Callable[[dict[str, Any]], bool],
                    within: float = 15.0) -> dict[str, Any]:
        """The job once `predicate(job)` holds (the progress consumer is asynchronous)."""
        return await eventually(lambda: self.job(job_id), predicate, within=within, what=f"job {job_id} state")


@pytest.fixture
async def jobs_gateway(tmp_path: Path, rabbit_url: str,
                       fake_llm: FakeLLM) -> AsyncIterator[Callable[..., Awaitable[JobsGateway]]]:
    """`gw = await jobs_gateway(llm=True, **settings)`: the real app, a FakeImageWorker on the image
    queue and, if `llm`, the FakeLLM behind batch text."""
    async with AsyncExitStack() as stack:
        async def make(llm: bool = True, **overrides: Any) -> JobsGateway:
            values: dict[str, Any] = {
                "llm_base_url": fake_llm.base_url if llm else None, "llm_model": "fake-model",
                "jobs_image_sizes": ["64x64", "128x128"], "jobs_blocked_terms": ["forbidden", "bad phrase"],
            }
            settings = gateway_settings(tmp_path, rabbit_url, **{**values, **overrides})
            worker = await FakeImageWorker(rabbit_url, tmp_path / "blobs").start()
            stack.push_async_callback(worker.close)
            started = await Gateway.start(settings, stack)
            return JobsGateway(started.app, started.client, stack, worker, tmp_path / "blobs")

        yield make
