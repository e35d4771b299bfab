"""Calls spread over every replica a name resolves to, and servers retire old connections so
clients re-resolve and reach replicas that started later (what a headless Service needs)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest

from genai.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from genai_common.grpc_client import open_channel
from genai_common.grpc_server import GrpcServer

SERVICE = retriever_pb2.DESCRIPTOR.services_by_name["RetrieverService"].full_name


class NamedReplica(retriever_pb2_grpc.RetrieverServiceServicer):
    """Answers with its own name, so the caller sees which replica served it."""

    def __init__(self, name: str) -> None:
        self._name = name

    async def Search(
        self, request: retriever_pb2.SearchRequest, context: grpc.aio.ServicerContext,
    ) -> retriever_pb2.SearchResponse:
        return retriever_pb2.SearchResponse(hits=[retriever_pb2.Hit(text=self._name)])


def _replica(name: str, **options: float) -> GrpcServer:
    return GrpcServer(
        host="127.0.0.1", port=0, metric_prefix=f"test_balancing_{name}", service_names=[SERVICE],
        register=lambda s: retriever_pb2_grpc.add_RetrieverServiceServicer_to_server(NamedReplica(name), s),
        **options,
    )


@pytest.fixture
async def two_replicas() -> AsyncIterator[tuple[GrpcServer, GrpcServer]]:
    first, second = _replica("a"), _replica("b")
    await first.start()
    await second.start()
    yield first, second
    await first.stop(grace=1)
    await second.stop(grace=1)


async def _served_by(channel: grpc.aio.Channel, calls: int) -> Counter[str]:
    stub = retriever_pb2_grpc.RetrieverServiceStub(channel)
    replies = [await stub.Search(retriever_pb2.SearchRequest(query="q"), timeout=5) for _ in range(calls)]
    return Counter(reply.hits[0].text for reply in replies)


async def test_calls_are_spread_over_every_resolved_replica(two_replicas: tuple[GrpcServer, GrpcServer]) -> None:
    first, second = two_replicas
    # A target that resolves to two addresses, as a headless Service name resolves to every pod.
    target = f"ipv4:127.0.0.1:{first.port},127.0.0.1:{second.port}"
    async with open_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 5)
        served = await _served_by(channel, 40)
    # Round robin over both ready subchannels; the default policy would send all 40 to one.
    assert set(served) == {"a", "b"}, served
    assert min(served.values()) >= 10, served


async def test_a_dns_target_works_on_one_machine(two_replicas: tuple[GrpcServer, GrpcServer]) -> None:
    first, _ = two_replicas
    async with open_channel(f"dns:///127.0.0.1:{first.port}") as channel:
        assert await _served_by(channel, 3) == Counter({"a": 3})


async def test_a_server_retires_old_connections_so_clients_re_resolve() -> None:
    server = _replica("aged", max_connection_age=0.3, max_connection_age_grace=1.0)
    await server.start()
    try:
        async with open_channel(f"dns:///127.0.0.1:{server.port}") as channel:
            assert await _served_by(channel, 1) == Counter({"aged": 1})
            assert channel.get_state() == grpc.ChannelConnectivity.READY
            # The server sends GOAWAY when the connection reaches its age: the channel leaves READY
            # (and re-resolves its target), without any call failing.
            await asyncio.wait_for(channel.wait_for_state_change(grpc.ChannelConnectivity.READY), 10)
            assert await _served_by(channel, 3) == Counter({"aged": 3})
    finally:
        await server.stop(grace=1)
