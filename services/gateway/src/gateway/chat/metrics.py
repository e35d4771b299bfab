"""Chat metrics (small, closed label sets)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from gateway.errors import ClientGone
from genai_common.errors import InvalidInput, Saturated, ServiceError
from genai_common.metrics import LATENCY_BUCKETS

# mode: llm | retrieval_only; outcome: ok | client_error | rejected | upstream_error | cancelled | error
CHAT_REQUESTS = Counter("gateway_chat_requests_total", "Chat completions answered, by mode and outcome",
                        ("mode", "outcome"))
# From sending the request to the LLM until its first streamed chunk arrives (streaming chats only).
TIME_TO_FIRST_TOKEN = Histogram("gateway_llm_time_to_first_token_seconds",
                                "Seconds from the LLM call to its first streamed chunk", buckets=LATENCY_BUCKETS)
# backend: scraper | retriever
BACKEND_FAILURES = Counter("gateway_backend_failures_total",
                           "Chats that went on without a backend that failed or timed out", ("backend",))


def backend_failed(backend: str) -> None:
    BACKEND_FAILURES.labels(backend).inc()


def outcome_of(exc: Exception) -> str:
    """The `outcome` label of a chat that ended with `exc`.

    Sources that fail never end a chat (it goes on without them), so a service error other than
    a refusal here comes from the LLM; the LLM adapter's own codes start with `llm_`.
    """
    if isinstance(exc, Saturated):
        return "rejected"
    if isinstance(exc, ClientGone):
        return "cancelled"
    if isinstance(exc, InvalidInput) and not (exc.code or "").startswith("llm_"):
        return "client_error"
    if isinstance(exc, ServiceError):
        return "upstream_error"
    return "error"
