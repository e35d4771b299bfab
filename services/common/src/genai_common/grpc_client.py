"""grpc.aio client plumbing: one channel per peer with keepalive, request-id propagation, error mapping.

A channel balances its calls over every address its target resolves to (`round_robin`), so
`dns:///scraper-headless:50051` spreads calls over every replica behind a headless Service; the
servers bound each connection's age (`genai_common.grpc_server`), which makes clients re-resolve
and reach replicas an autoscaler added. A plain `host:port` target resolves through DNS too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from genai_common.errors import (
    Conflict,
    DeadlineExceeded,
    InvalidInput,
    NotFound,
    RateLimited,
    ServiceError,
    Unauthenticated,
    Unavailable,
)
from genai_common.grpc_server import REQUEST_ID_KEY
from genai_common.logging import request_id_var

log = logging.getLogger(__name__)

T = TypeVar("T")

# The deadline of a call made without `timeout=`: a forgotten deadline must not mean "forever".
DEFAULT_DEADLINE_SECONDS = 30.0
# One subchannel per resolved address, calls spread over the ready ones (the default picks one).
ROUND_ROBIN_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


class _CallDefaultsInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds the request id from the contextvar, and the default deadline when a call has none."""

    def __init__(self, default_timeout: float) -> None:
        self._default_timeout = default_timeout

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        request_id = request_id_var.get()
        metadata = client_call_details.metadata
        if request_id:
            metadata = grpc.aio.Metadata(*(metadata or ()))
            metadata.add(REQUEST_ID_KEY, request_id)
        timeout = self._default_timeout if client_call_details.timeout is None else client_call_details.timeout
        client_call_details = grpc.aio.ClientCallDetails(
            client_call_details.method, timeout, metadata,
            client_call_details.credentials, client_call_details.wait_for_ready,
        )
        return await continuation(client_call_details, request)


def open_channel(
    address: str, max_message_bytes: int = 32 * 1024 * 1024, *, default_timeout: float = DEFAULT_DEADLINE_SECONDS,
) -> grpc.aio.Channel:
    """A round-robin channel with keepalive; pass `timeout=` (a deadline) on every call: a unary
    call made without one gets `default_timeout` seconds."""
    return grpc.aio.insecure_channel(
        address,
        interceptors=[_CallDefaultsInterceptor(default_timeout)],
        options=[
            ("grpc.service_config", ROUND_ROBIN_SERVICE_CONFIG),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 5_000),
        ],
    )


# Codes a peer's own servicer sets from a ServiceError, whose message is meant for clients.
_MEANT_FOR_CLIENTS = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                grpc.StatusCode.FAILED_PRECONDITION})


_PLAIN = {grpc.StatusCode.DEADLINE_EXCEEDED: "did not answer in time", grpc.StatusCode.RESOURCE_EXHAUSTED: "busy",
          grpc.StatusCode.UNAUTHENTICATED: "refused the call"}


def error_from_rpc(exc: grpc.aio.AioRpcError, peer: str) -> ServiceError:
    """Translate a failed call into the caller's error hierarchy (the inverse of the server's map).

    Transport and server failures carry details a client must never see (peer addresses, DNS and
    TLS errors, stack fragments): those are logged here, with the request id, and the error says
    only which peer failed and how.
    """
    code = exc.code()
    if code in _MEANT_FOR_CLIENTS:
        detail = f"{peer}: {exc.details() or code.name}"
    else:
        log.warning("%s call failed: %s: %s", peer, code.name, exc.details())
        detail = f"{peer}: {_PLAIN.get(code, 'unavailable')}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(detail)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidInput(detail)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(detail)
    if code == grpc.StatusCode.FAILED_PRECONDITION:  # what the server side makes of a Conflict
        return Conflict(detail)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return RateLimited(detail)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(detail)
    return Unavailable(detail)


async def unary(method: Callable[..., Awaitable[T]], request: Any, *, deadline: float, peer: str,
                wait_for_ready: bool = False) -> T:
    """One unary RPC with its deadline; a failed call becomes a ServiceError naming `peer`.

    `wait_for_ready` waits (within the deadline) for a channel that is reconnecting instead of
    failing at once: for background work that should ride out a peer's restart.
    """
    try:
        return await method(request, timeout=deadline, wait_for_ready=wait_for_ready)
    except grpc.aio.AioRpcError as exc:
        raise error_from_rpc(exc, peer) from exc
