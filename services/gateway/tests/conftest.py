"""Fixtures for the gateway's unit tests (add new fixtures below; keep existing ones stable).

Chat tests run the real FastAPI app from `create_app` with only the chat feature's resources
opened (no SQL or broker needed): peers are in-process gRPC fakes reached through the real
`peers.py` clients, and the LLM is `FakeLLM`, a real OpenAI-compatible HTTP server.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from gateway import chat
from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.fakes.fake_llm import FakeLLM
from tests.fakes.fake_peers import FakePeers
from tests.support.procs import free_port

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM) -> Iterator[FakeLLM]:
    """The session's FakeLLM with fresh behaviour and records."""
    fake_llm_server.reset()
    yield fake_llm_server
    fake_llm_server.reset()


@pytest.fixture
async def fake_peers() -> AsyncIterator[FakePeers]:
    async with FakePeers() as peers:
        yield peers


def chat_settings(tmp_path: Path, peers: FakePeers, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "scraper_addr": peers.address, "retriever_addr": peers.address,
        "scrape_deadline_seconds": 2.0, "retrieve_deadline_seconds": 2.0,
        "llm_base_url": None, "llm_model": None, "llm_timeout_seconds": 10.0, "gateway_api_keys": [],
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/gateway.db", "blob_store_url": f"file://{tmp_path}/blobs",
    }
    return GatewaySettings(**{**values, **overrides})


async def open_chat_app(settings: GatewaySettings, stack: AsyncExitStack) -> FastAPI:
    """The real app with the chat feature's resources open (what the lifespan does for chat)."""
    app = create_app(settings)
    app.state.settings = settings
    await chat.open_resources(app, settings, stack)
    return app


GatewayFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def chat_gateway(tmp_path: Path, fake_peers: FakePeers, fake_llm: FakeLLM) -> AsyncIterator[GatewayFactory]:
    """`client = await chat_gateway(llm=True, **settings)`: an httpx client on the app (ASGITransport)."""
    async with AsyncExitStack() as stack:
        async def make(llm: bool = True, **overrides: Any) -> httpx.AsyncClient:
            if llm:
                overrides.setdefault("llm_base_url", fake_llm.base_url)
            app = await open_chat_app(chat_settings(tmp_path, fake_peers, **overrides), stack)
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway", timeout=30)
            stack.push_async_callback(client.aclose)
            return client

        yield make


@pytest.fixture
async def chat_server(tmp_path: Path, fake_peers: FakePeers, fake_llm: FakeLLM) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """`base_url = await chat_server(**settings)`: the app on a real uvicorn server in this loop."""
    async with AsyncExitStack() as stack:
        async def make(**overrides: Any) -> str:
            overrides.setdefault("llm_base_url", fake_llm.base_url)
            app = await open_chat_app(chat_settings(tmp_path, fake_peers, **overrides), stack)
            port = free_port()
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                                   log_config=None, access_log=False, timeout_graceful_shutdown=2))
            task = asyncio.create_task(server.serve())

            async def stop() -> None:
                server.should_exit = True
                await task

            stack.push_async_callback(stop)
            for _ in range(500):
                if server.started or task.done():
                    break
                await asyncio.sleep(0.01)
            assert server.started, "uvicorn did not start"
            return f"http://127.0.0.1:{port}"

        yield make


# --- documents feature: real SQLite, blob dir and RabbitMQ (a throw-away vhost), fake retriever ---

from dataclasses import dataclass, field  # noqa: E402

import aio_pika  # noqa: E402

from gateway import documents  # noqa: E402
from gateway.app import _open_storage  # noqa: E402
from gateway.peers import Passage  # noqa: E402
from genai_common.errors import Unavailable  # noqa: E402
from tests.support import rabbitmq  # noqa: E402


@dataclass
class FakeRetriever:
    """Stands in for `app.state.retriever` (the real client is tested against the real service)."""

    passages: list[Passage] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    searches: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False

    async def search(self, query: str, *, top_k: int, score_threshold: float | None = None,
                     document_ids: Any = (), mode: str | None = None) -> list[Passage]:
        if self.fail:
            raise Unavailable("retriever: fake backend is down")
        self.searches.append({"query": query, "top_k": top_k, "score_threshold": score_threshold,
                              "document_ids": list(document_ids), "mode": mode})
        hits = [p for p in self.passages if not document_ids or p.document_id in document_ids]
        return hits[:top_k]

    async def delete_document(self, document_id: str) -> int:
        if self.fail:
            raise Unavailable("retriever: fake backend is down")
        self.deleted.append(document_id)
        return sum(1 for p in self.passages if p.document_id == document_id)


@pytest.fixture(scope="session")
def rabbit_url() -> Iterator[str]:
    """AMQP URL of a vhost of the local RabbitMQ that only this test session uses."""
    if not rabbitmq.available():
        pytest.skip("rabbitmqctl not found: the documents tests need the local RabbitMQ")
    with rabbitmq.temporary_vhost("gateway-docs") as url:
        yield url


@dataclass
class DocumentsGateway:
    client: httpx.AsyncClient
    app: FastAPI
    retriever: FakeRetriever
    blob_root: Path
    uploads: aio_pika.abc.AbstractQueue | None

    def stored_blobs(self) -> list[Path]:
        return [p for p in self.blob_root.rglob("*") if p.is_file()]

    async def published(self) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Every `document.uploaded` message published so far (taken off the test's queue)."""
        assert self.uploads is not None
        messages = []
        while (message := await self.uploads.get(fail=False, no_ack=True)) is not None:
            messages.append(message)
        return messages


@pytest.fixture
async def documents_gateway(tmp_path: Path, rabbit_url: str) -> AsyncIterator[Callable[..., Awaitable[DocumentsGateway]]]:
    """`gw = await documents_gateway(bind_uploads=True, **settings)`: the app with its documents feature open."""
    async with AsyncExitStack() as stack:
        async def make(bind_uploads: bool = True, amqp_url: str = rabbit_url, **overrides: Any) -> DocumentsGateway:
            settings = GatewaySettings(**{
                "database_url": f"sqlite+aiosqlite:///{tmp_path}/gateway.db", "blob_store_url": f"file://{tmp_path}/blobs",
                "amqp_url": amqp_url, "gateway_api_keys": [], "llm_base_url": None, **overrides})
            app = create_app(settings)
            app.state.settings = settings
            await _open_storage(app, settings, stack)
            app.state.retriever = FakeRetriever()
            await documents.open_resources(app, settings, stack)
            uploads = None
            if bind_uploads:
                connection = await aio_pika.connect(amqp_url)
                stack.push_async_callback(connection.close)
                channel = await connection.channel()
                uploads = await channel.declare_queue(f"test.uploads.{os.getpid()}.{id(app):x}", auto_delete=True)
                await uploads.bind("genai.events", routing_key="document.uploaded")
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway", timeout=30)
            stack.push_async_callback(client.aclose)
            return DocumentsGateway(client, app, app.state.retriever, tmp_path / "blobs", uploads)

        yield make


# --- jobs feature: the whole app (lifespan: SQL, RabbitMQ vhost, progress consumer, text consumer) ---

import io  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

from PIL import Image  # noqa: E402

from genai.events.v1 import events_pb2  # noqa: E402
from genai_common.amqp import Amqp, QueueSpec  # noqa: E402

IMAGE_QUEUE = QueueSpec("imagegen.image-jobs", ("image.job.requested",))


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

    async def _drain(self, queue: aio_pika.abc.AbstractQueue, cls: type) -> list:
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
class JobsGateway:
    client: httpx.AsyncClient
    app: FastAPI
    worker: FakeImageWorker
    blob_root: Path
    stack: AsyncExitStack

    async def serve(self) -> str:
        """The same app on a real uvicorn server in this loop (for streamed responses); its base URL."""
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, lifespan="off",
                                               log_config=None, access_log=False))
        task = asyncio.create_task(server.serve())

        async def stop() -> None:
            server.should_exit = True
            await task

        self.stack.push_async_callback(stop)
        deadline = time.monotonic() + 10
        while not server.started and not task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        return f"http://127.0.0.1:{port}"

    async def job(self, job_id: str) -> dict:
        reply = await self.client.get(f"/v1/jobs/{job_id}")
        assert reply.status_code == 200, reply.text
        return reply.json()

    async def until(self, job_id: str, predicate: Callable[[dict], bool], timeout: float = 15.0) -> dict:
        """Poll the job until `predicate(job)` holds (the progress consumer is asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if predicate(job):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job never reached the expected state: {job}")
            await asyncio.sleep(0.02)


@pytest.fixture
async def jobs_gateway(tmp_path: Path, rabbit_url: str, fake_llm: FakeLLM) -> AsyncIterator[Callable[..., Awaitable[JobsGateway]]]:
    """`gw = await jobs_gateway(llm=True, **settings)`: the real app through its lifespan, with a
    FakeImageWorker on the image queue and, if `llm`, the FakeLLM behind batch text."""
    async with AsyncExitStack() as stack:
        async def make(llm: bool = True, **overrides: Any) -> JobsGateway:
            values: dict[str, Any] = {
                "database_url": f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
                "blob_store_url": f"file://{tmp_path}/blobs", "amqp_url": rabbit_url, "gateway_api_keys": [],
                "llm_base_url": fake_llm.base_url if llm else None, "llm_model": "fake-model",
                "jobs_image_sizes": ["64x64", "128x128"], "jobs_blocked_terms": ["forbidden", "bad phrase"],
                "shutdown_grace_seconds": 2.0,
            }
            settings = GatewaySettings(**{**values, **overrides})
            worker = await FakeImageWorker(rabbit_url, tmp_path / "blobs").start()
            stack.push_async_callback(worker.close)
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway", timeout=30)
            stack.push_async_callback(client.aclose)
            return JobsGateway(client, app, worker, tmp_path / "blobs", stack)

        yield make
