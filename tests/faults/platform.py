"""The real workers as processes on the private broker, and the effects a scenario counts.

- `RetrieverProcess`: `python -m retriever` with the embedded Qdrant engine under a folder of its
  own (the real embedding model, offline); `chunk_ids(document)` reads what the store holds.
- `Workers`: `python -m ingest` and `python -m imagegen` (`IMAGEGEN_MODEL=tiny-random`, 64x64) on
  one virtual host, against a retriever; each can be killed (SIGKILL) and started again.
- `document_effects` / `image_effects`: lost and duplicated, counted in the store and the blob
  folder, not in a stand-in: a document is right when it is `indexed` and the store holds exactly
  the chunk ids `uuid5(document:i)` for i < its chunk count; an image job is right when it
  `succeeded` with exactly n PNGs in the blob store, or `failed` with a reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx

from genai.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from retriever.domain import chunk_point_id
from tests.support.procs import Service, free_port, grpc_serving, http_ok

BOUNDARY = "genai-faults"
IMAGE = {"prompt": "a lighthouse at dusk", "n": 2, "size": "64x64", "steps": 2}


class RetrieverProcess:
    def __init__(self, root: Path, name: str = "retriever") -> None:
        self.addr = f"127.0.0.1:{free_port()}"
        self._root = root
        self._name = name
        self._env = {"RETRIEVER_PORT": self.addr.rsplit(":", 1)[1], "RETRIEVER_METRICS_PORT": str(free_port()),
                     "QDRANT_PATH": str(root / f"{name}-qdrant"), "LOG_LEVEL": "WARNING"}
        self.service: Service | None = None

    def start(self, timeout: float = 240.0) -> RetrieverProcess:
        self.service = Service("retriever", self._env, self._root / f"{self._name}.log")
        self.service.wait_until(lambda: grpc_serving(self.addr), timeout=timeout)
        return self

    def stop(self) -> None:
        if self.service is not None:
            self.service.terminate()
            self.service = None

    def chunk_ids(self, document_id: str) -> set[str]:
        with grpc.insecure_channel(self.addr) as channel:
            reply = retriever_pb2_grpc.RetrieverServiceStub(channel).ListChunkIds(
                retriever_pb2.ListChunkIdsRequest(document_id=document_id), timeout=30)
        return set(reply.chunk_ids)


@dataclass
class Workers:
    root: Path
    amqp_url: str
    retriever_addr: str
    overrides: dict[str, str] = field(default_factory=dict)
    ingest: Service | None = None
    imagegen: Service | None = None
    ingest_metrics_port: int = field(default_factory=free_port)
    imagegen_metrics_port: int = field(default_factory=free_port)

    def _env(self) -> dict[str, str]:
        return {"AMQP_URL": self.amqp_url, "BLOB_STORE_URL": f"file://{self.root}/blobs",
                "RETRIEVER_ADDR": self.retriever_addr, "LOG_LEVEL": "WARNING", "SHUTDOWN_GRACE_SECONDS": "5",
                "INGEST_METRICS_PORT": str(self.ingest_metrics_port),
                "IMAGEGEN_METRICS_PORT": str(self.imagegen_metrics_port), "IMAGEGEN_MODEL": "tiny-random",
                # Retries within a scenario's time: 1 s, 2 s, 4 s... up to 8 s, for 5 minutes.
                "INGEST_RETRY_ATTEMPTS": "60", "INGEST_RETRY_BUDGET_SECONDS": "300",
                "IMAGEGEN_RETRY_ATTEMPTS": "60", "IMAGEGEN_RETRY_BUDGET_SECONDS": "300", **self.overrides}

    def start_ingest(self, timeout: float = 90.0) -> Service:
        self.ingest = Service("ingest", self._env(), self.root / "ingest.log")
        self.ingest.wait_until(lambda: http_ok(f"http://127.0.0.1:{self.ingest_metrics_port}/readyz"), timeout)
        return self.ingest

    def start_imagegen(self, timeout: float = 180.0) -> Service:
        self.imagegen = Service("imagegen", self._env(), self.root / "imagegen.log")
        self.imagegen.wait_until(lambda: http_ok(f"http://127.0.0.1:{self.imagegen_metrics_port}/readyz"), timeout)
        return self.imagegen

    def metrics(self, port: int) -> str:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text

    def stop(self) -> None:
        for service in (self.ingest, self.imagegen):
            if service is not None:
                service.terminate()


def text_document(marker: str) -> bytes:
    return (f"Field note {marker}. The tide gauge at the northern pier read {len(marker)} metres at dawn, "
            f"and the harbour master logged the reading under reference {marker}.").encode()


async def upload_text(client: httpx.AsyncClient, marker: str | None = None) -> httpx.Response:
    marker = marker or uuid.uuid4().hex
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="note-{marker[:8]}.txt"\r\n'
            f"Content-Type: text/plain\r\n\r\n").encode()
    body = head + text_document(marker) + f"\r\n--{BOUNDARY}--\r\n".encode()
    return await client.post("/v1/documents", content=body,
                             headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})


async def document_records(client: httpx.AsyncClient, ids: list[str]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for document_id in ids:
        reply = await client.get(f"/v1/documents/{document_id}")
        found[document_id] = reply.json() if reply.status_code == 200 else {"status": str(reply.status_code)}
    return found


def document_effects(records: dict[str, dict], retriever: RetrieverProcess) -> tuple[int, int]:
    """(lost, duplicated): lost = not indexed, or its chunks missing from the store; duplicated =
    chunk ids in the store beyond the expected ones (a chunk written twice under a new id)."""
    lost = duplicated = 0
    for document_id, record in records.items():
        if record.get("status") != "indexed" or not record.get("chunks"):
            lost += 1
            continue
        expected = {chunk_point_id(document_id, i) for i in range(record["chunks"])}
        stored = retriever.chunk_ids(document_id)
        lost += bool(expected - stored)
        duplicated += len(stored - expected)
    return lost, duplicated


async def image_records(client: httpx.AsyncClient, ids: list[str]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for job_id in ids:
        reply = await client.get(f"/v1/jobs/{job_id}")
        found[job_id] = reply.json() if reply.status_code == 200 else {"status": str(reply.status_code)}
    return found


def image_effects(records: dict[str, dict], blobs: Path) -> tuple[int, int, int]:
    """(lost, duplicated, failed with a reason): lost = not terminal, fewer PNGs than asked, or
    failed without a reason; duplicated = more PNGs than asked."""
    lost = duplicated = failed = 0
    for job_id, record in records.items():
        pngs = sorted((blobs / "images" / job_id).glob("*.png")) if (blobs / "images" / job_id).is_dir() else []
        if record.get("status") == "succeeded":
            asked = (record.get("params") or {}).get("n") or IMAGE["n"]
            lost += len(pngs) < asked or len(record.get("results") or []) != asked
            duplicated += max(0, len(pngs) - asked)
        elif record.get("status") == "failed" and (record.get("error") or {}).get("message"):
            failed += 1
        else:
            lost += 1
    return lost, duplicated, failed
