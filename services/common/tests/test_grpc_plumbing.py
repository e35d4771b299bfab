"""GrpcServer and the client channel: health, reflection, error mapping, request ids, stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY

from genai.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from genai_common.errors import Conflict, DeadlineExceeded, InvalidInput, NotFound
from genai_common.grpc_client import error_from_rpc, open_channel
from genai_common.grpc_server import GrpcServer
from genai_common.logging import request_id_var
from tests.support.eventually import eventually

SERVICE = retriever_pb2.DESCRIPTOR.services_by_name["RetrieverService"].full_name


class EchoRetriever(retriever_pb2_grpc.RetrieverServiceServicer):
    """Answers with what the plumbing gave it: the request id, or a typed error."""

    async def Search(self, request: retriever_pb2.SearchRequest,
                     context: grpc.aio.ServicerContext) -> retriever_pb2.SearchResponse:
        if request.query == "missing":
            raise NotFound("no such document")
        if request.query == "bad":
            raise InvalidInput("query must not be empty")
        if request.query == "boom":
            raise RuntimeError("secret internal detail")
        if request.query == "taken":
            raise Conflict("already indexed by another writer")
        if request.query == "hang":
            await asyncio.Event().wait()
        if request.query == "slow":
            await asyncio.sleep(1.0)  # longer than the short default deadline of the test below
        return retriever_pb2.SearchResponse(hits=[retriever_pb2.Hit(text=request_id_var.get() or "")])


@pytest.fixture
async def server() -> AsyncIterator[GrpcServer]:
    srv = GrpcServer(
        host="127.0.0.1", port=0, metric_prefix="test_plumbing", service_names=[SERVICE],
        register=lambda s: retriever_pb2_grpc.add_RetrieverServiceServicer_to_server(EchoRetriever(), s),
    )
    await srv.start()
    yield srv
    await srv.stop(grace=1)


async def test_health_reports_serving_for_the_server_and_each_service(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=2)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_flips_to_not_serving_when_stopping() -> None:
    srv = GrpcServer(host="127.0.0.1", port=0, metric_prefix="test_stop", service_names=[SERVICE],
                     register=lambda s: None)
    await srv.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10)
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        await srv.stop(grace=2)
        second = await watch.read()
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_reflection_lists_the_services(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=2)
        names = {s.name async for reply in call for s in reply.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names


async def test_typed_errors_map_to_status_codes_and_internal_details_stay_hidden(server: GrpcServer) -> None:
    async with open_channel(f"127.0.0.1:{server.port}") as channel:
        stub = retriever_pb2_grpc.RetrieverServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.Search(retriever_pb2.SearchRequest(query="missing"), timeout=2)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert isinstance(error_from_rpc(missing.value, "retriever"), NotFound)
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.Search(retriever_pb2.SearchRequest(query="bad"), timeout=2)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "must not be empty" in bad.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as boom:
            await stub.Search(retriever_pb2.SearchRequest(query="boom"), timeout=2)
        assert boom.value.code() == grpc.StatusCode.INTERNAL
        assert "secret" not in boom.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as taken:
            await stub.Search(retriever_pb2.SearchRequest(query="taken"), timeout=2)
        assert isinstance(error_from_rpc(taken.value, "retriever"), Conflict)  # the round trip keeps the type


async def test_a_call_without_a_deadline_gets_the_channels_default_one(server: GrpcServer) -> None:
    async with open_channel(f"127.0.0.1:{server.port}", default_timeout=0.5) as channel:
        stub = retriever_pb2_grpc.RetrieverServiceStub(channel)
        async with asyncio.timeout(10):  # without the default the call would wait forever
            with pytest.raises(grpc.aio.AioRpcError) as hung:
                await stub.Search(retriever_pb2.SearchRequest(query="hang"))
        assert hung.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert isinstance(error_from_rpc(hung.value, "retriever"), DeadlineExceeded)
        reply = await stub.Search(retriever_pb2.SearchRequest(query="slow"), timeout=10)  # an explicit one wins
        assert len(reply.hits) == 1


async def test_request_id_travels_from_client_context_to_server_context(server: GrpcServer) -> None:
    token = request_id_var.set("req-abc-123")
    try:
        async with open_channel(f"127.0.0.1:{server.port}") as channel:
            reply = await retriever_pb2_grpc.RetrieverServiceStub(channel).Search(
                retriever_pb2.SearchRequest(query="hello"), timeout=2
            )
    finally:
        request_id_var.reset(token)
    assert reply.hits[0].text == "req-abc-123"


def _count(method: str, code: str) -> float | None:
    return REGISTRY.get_sample_value("test_plumbing_grpc_request_duration_seconds_count",
                                     {"method": method, "code": code})


async def test_calls_are_timed_by_method_and_code_and_probes_are_not(server: GrpcServer) -> None:
    # Every method of the service has its series from the start, one per code the server records.
    assert _count("Index", "UNAVAILABLE") == 0 and _count("DeleteDocument", "OK") == 0
    before = {code: _count("Search", code) or 0 for code in ("OK", "INTERNAL", "DEADLINE_EXCEEDED")}
    async with open_channel(f"127.0.0.1:{server.port}") as channel:
        stub = retriever_pb2_grpc.RetrieverServiceStub(channel)
        await stub.Search(retriever_pb2.SearchRequest(query="hello"), timeout=2)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Search(retriever_pb2.SearchRequest(query="boom"), timeout=2)
        with pytest.raises(grpc.aio.AioRpcError):  # outlives the caller's deadline: the server says so
            await stub.Search(retriever_pb2.SearchRequest(query="hang"), timeout=0.2)
        for _ in range(3):
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    await eventually(lambda: _count("Search", "DEADLINE_EXCEEDED"),
                     lambda value: value == before["DEADLINE_EXCEEDED"] + 1, what="the late call recorded")
    assert _count("Search", "OK") == before["OK"] + 1
    assert _count("Search", "INTERNAL") == before["INTERNAL"] + 1
    assert _count("Check", "OK") is None  # probes stay out of the latency histogram
