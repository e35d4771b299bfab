"""grpc.aio server plumbing: health + reflection, request ids, metrics, error mapping, graceful stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from genai_common.errors import (
    Conflict,
    DeadlineExceeded,
    InvalidInput,
    NotFound,
    RateLimited,
    ServiceError,
    Unauthenticated,
    Unavailable,
    UpstreamError,
)
from genai_common.logging import new_request_id, request_id_var
from genai_common.metrics import latency_histogram

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
# A connection older than this is closed (GOAWAY) once its calls finish, so clients re-resolve the
# service name and spread over replicas that started after they connected.
MAX_CONNECTION_AGE_SECONDS = 60.0
# Calls still running on a closing connection get this long: more than the longest call deadline
# a client sets (ingest's Index, 120 s).
MAX_CONNECTION_AGE_GRACE_SECONDS = 150.0

_STATUS_OF: dict[type[ServiceError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Conflict: grpc.StatusCode.FAILED_PRECONDITION,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    UpstreamError: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
}


def status_code_for(error: ServiceError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in _STATUS_OF:
            return _STATUS_OF[cls]
    return grpc.StatusCode.INTERNAL


# The codes this interceptor records (every method x code series exists from the start).
RECORDED_CODES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "FAILED_PRECONDITION",
    "RESOURCE_EXHAUSTED", "UNAUTHENTICATED", "UNAVAILABLE", "INTERNAL",
)


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Sets the request id from metadata, maps ServiceError, and records the latency and code of
    the calls of `service_names` (health checks and reflection are probes: not recorded)."""

    def __init__(self, metric_prefix: str, service_names: Sequence[str] = ()) -> None:
        self._latency = latency_histogram(
            f"{metric_prefix}_grpc_request_duration_seconds", "gRPC request latency, by method and code",
            ("method", "code"),
        )
        self._timed = {f"/{name}/" for name in service_names}
        for name in service_names:
            for method in descriptor_pool.Default().FindServiceByName(name).methods:
                for code in RECORDED_CODES:
                    self._latency.labels(method.name, code)

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        service, _, method = details.method.rpartition("/")
        timed = f"{service}/" in self._timed
        request_id = dict(details.invocation_metadata or ()).get(REQUEST_ID_KEY) or new_request_id()
        inner = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token = request_id_var.set(request_id)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await inner(request, context)
            except ServiceError as exc:
                code = status_code_for(exc)
                await context.abort(code, exc.message)
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except asyncio.CancelledError:
                # The caller went away, or its deadline passed while we worked.
                remaining = context.time_remaining()
                late = remaining is not None and remaining <= 0
                code = grpc.StatusCode.DEADLINE_EXCEEDED if late else grpc.StatusCode.CANCELLED
                raise
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("unhandled error in %s", method)
                await context.abort(code, "internal error")
            finally:
                if timed:
                    self._latency.labels(method, code.name).observe(time.perf_counter() - started)
                request_id_var.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )


class GrpcServer:
    """One grpc.aio server with health and reflection; health flips to NOT_SERVING on stop.
    Connections live at most `max_connection_age` seconds (see MAX_CONNECTION_AGE_SECONDS).

    `register` adds the service's servicers; `service_names` are their full names
    (for health and reflection), e.g. `retriever_pb2.DESCRIPTOR.services_by_name[...].full_name`.
    """

    def __init__(
        self, *, host: str, port: int, metric_prefix: str, service_names: Sequence[str],
        register: Callable[[grpc.aio.Server], None], max_message_bytes: int = 32 * 1024 * 1024,
        max_connection_age: float = MAX_CONNECTION_AGE_SECONDS,
        max_connection_age_grace: float = MAX_CONNECTION_AGE_GRACE_SECONDS,
    ) -> None:
        self._address = f"{host}:{port}"
        self._service_names = list(service_names)
        self._health = health.aio.HealthServicer()
        self._server = grpc.aio.server(
            interceptors=[ServerInterceptor(metric_prefix, service_names)],
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.max_connection_age_ms", int(max_connection_age * 1000)),
                ("grpc.max_connection_age_grace_ms", int(max_connection_age_grace * 1000)),
            ],
        )
        register(self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        self.port = 0

    async def start(self) -> int:
        self.port = self._server.add_insecure_port(self._address)
        await self._server.start()
        await self._set_all(health_pb2.HealthCheckResponse.SERVING)
        log.info("gRPC server listening", extra={"port": self.port, "services": self._service_names})
        return self.port

    async def stop(self, grace: float) -> None:
        """NOT_SERVING first (probes and clients see it), then refuse new calls and drain."""
        await self._set_all(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._server.stop(grace)

    async def _set_all(self, status: int) -> None:
        for name in ("", *self._service_names):
            await self._health.set(name, status)
