"""Shared by the document benchmarks: the real ingest path as processes on this machine.

`DocumentsStack` starts the retriever and the ingest worker (and, if asked, the gateway) in a
throw-away RabbitMQ vhost with their own blob directory and Qdrant path. `Feed` puts uploads on
the bus exactly as the gateway does (blob first, then a confirmed `document.uploaded`) and
collects the `job.progress` events that come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The checkout on sys.path (for tests.support) before the imports below, hence their `noqa: E402`.
sys.path.insert(0, str(ROOT))

import aio_pika  # noqa: E402

from genai.events.v1 import events_pb2  # noqa: E402
from genai_common.amqp import Amqp  # noqa: E402
from genai_common.blobs import FileBlobStore  # noqa: E402
from tests.support import rabbitmq  # noqa: E402
from tests.support.procs import Service, free_port, grpc_serving, http_ok  # noqa: E402

TERMINAL = (events_pb2.JOB_STATE_SUCCEEDED, events_pb2.JOB_STATE_FAILED)


@dataclass
class DocumentsStack:
    root: Path
    amqp_url: str
    retriever_addr: str
    gateway_url: str | None
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def blob_root(self) -> Path:
        return self.root / "blobs"


@contextlib.contextmanager
def documents_stack(*, ingest_env: Mapping[str, str] = (), retriever_env: Mapping[str, str] = (),
                    gateway: bool = False, keep: bool = False) -> Iterator[DocumentsStack]:
    if not rabbitmq.available():
        raise SystemExit("rabbitmqctl not found: these benchmarks need the local RabbitMQ")
    with contextlib.ExitStack() as exits:
        root = Path(tempfile.mkdtemp(prefix="docs-bench-")) if keep else Path(exits.enter_context(
            tempfile.TemporaryDirectory(prefix="docs-bench-")))
        amqp_url = exits.enter_context(rabbitmq.temporary_vhost("bench-docs"))
        retriever_port = free_port()
        shared = {"AMQP_URL": amqp_url, "BLOB_STORE_URL": f"file://{root}/blobs",
                  "RETRIEVER_ADDR": f"127.0.0.1:{retriever_port}", "LOG_LEVEL": "WARNING"}
        stack = DocumentsStack(root, amqp_url, shared["RETRIEVER_ADDR"], None)
        exits.callback(_stop_all, stack)
        stack.services["retriever"] = Service("retriever", {
            **shared, "RETRIEVER_PORT": str(retriever_port), "RETRIEVER_METRICS_PORT": str(free_port()),
            "QDRANT_PATH": str(root / "qdrant"), **dict(retriever_env)}, root / "retriever.log")
        metrics_port = free_port()
        stack.services["ingest"] = Service("ingest", {**shared, "INGEST_METRICS_PORT": str(metrics_port),
                                                      **dict(ingest_env)}, root / "ingest.log")
        stack.services["ingest"].wait_until(lambda: http_ok(f"http://127.0.0.1:{metrics_port}/readyz"), 60)
        if gateway:
            port = free_port()
            stack.gateway_url = f"http://127.0.0.1:{port}"
            stack.services["gateway"] = Service("gateway", {
                **shared, "GATEWAY_PORT": str(port), "DATABASE_URL": f"sqlite+aiosqlite:///{root}/gateway.db",
                "SCRAPER_ADDR": f"127.0.0.1:{free_port()}"}, root / "gateway.log")
            stack.services["gateway"].wait_until(lambda: http_ok(f"{stack.gateway_url}/readyz"), 90)
        stack.services["retriever"].wait_until(lambda: grpc_serving(stack.retriever_addr), 300)
        yield stack


def _stop_all(stack: DocumentsStack) -> None:
    for service in reversed(list(stack.services.values())):
        service.terminate()


@dataclass(frozen=True)
class Upload:
    document_id: str
    name: str
    media_type: str
    data: bytes


class Feed:
    """Publishes uploads like the gateway and gathers the terminal progress event of each."""

    def __init__(self, stack: DocumentsStack) -> None:
        self._stack = stack
        self._blobs = FileBlobStore(stack.blob_root)
        self.done: dict[str, events_pb2.JobProgress] = {}
        self.first_event_at: dict[str, float] = {}
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Feed:
        self._amqp = Amqp(self._stack.amqp_url, name="bench")
        await self._amqp.connect()
        self._connection = await aio_pika.connect_robust(self._stack.amqp_url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=256)
        queue = await channel.declare_queue("bench.job-progress", exclusive=True)
        await queue.bind("genai.events", routing_key="job.progress")
        await queue.consume(self._on_progress, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._connection.close()
        await self._amqp.close()

    async def _on_progress(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        event = events_pb2.JobProgress.FromString(message.body)
        self.first_event_at.setdefault(event.job_id, time.perf_counter())
        if event.state in TERMINAL and event.job_id not in self.done:
            self.done[event.job_id] = event
            self._changed.set()

    async def store(self, uploads: list[Upload]) -> None:
        for upload in uploads:
            await self._blobs.put(f"documents/{upload.document_id}", upload.data)

    async def publish(self, uploads: list[Upload], concurrency: int = 32) -> None:
        slots = asyncio.Semaphore(concurrency)

        async def one(upload: Upload) -> None:
            event = events_pb2.DocumentUploaded(
                document_id=upload.document_id, blob_key=f"documents/{upload.document_id}",
                sha256=hashlib.sha256(upload.data).hexdigest(), filename=upload.name,
                media_type=upload.media_type, size_bytes=len(upload.data))
            async with slots:
                await self._amqp.publish("document.uploaded", event, message_id=upload.document_id,
                                         headers={"document_id": upload.document_id})

        await asyncio.gather(*(one(u) for u in uploads))

    async def wait(self, document_ids: list[str], within: float, report_every: float = 0.0) -> None:
        deadline = time.monotonic() + within
        wanted = set(document_ids)
        last_report = time.monotonic()
        while not wanted <= self.done.keys():
            if time.monotonic() > deadline:
                missing = len(wanted - self.done.keys())
                raise TimeoutError(f"{missing} of {len(wanted)} documents had no outcome after {within:.0f} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=1.0)
            if report_every and time.monotonic() - last_report > report_every:
                last_report = time.monotonic()
                print(f"  ... {len(wanted & self.done.keys())}/{len(wanted)} documents done", flush=True)
