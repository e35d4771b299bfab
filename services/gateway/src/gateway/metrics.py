"""The gateway's Prometheus metrics: `gateway_<noun>_<unit>`, base units, small closed label sets.

Every label combination exists from the start (a rate or an alert on a series that appears only
with its first event reads "no data" until then). The edges record them: the HTTP middleware,
the chat routes, the LLM adapter, the jobs board, the record counts' refresher; the chat's
source gathering reports through a callback (`observe_backend`). Label children that a request
touches are looked up once and kept (`_children`), so recording costs a dict lookup.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar, cast

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from gateway.errors import ClientGone
from genai_common.errors import InvalidInput, Saturated, ServiceError
from genai_common.metrics import LATENCY_BUCKETS

# --- HTTP ---------------------------------------------------------------------------------------
# The probes' and Prometheus' own calls are not timed: they would swamp the API's latency.
UNTIMED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
HTTP_METHODS = ("GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
UNMATCHED = "unmatched"  # no route: a path nobody serves (its method is "other" when unusual)
HTTP_SECONDS = Histogram(
    "gateway_http_request_duration_seconds", "Seconds until the response starts, by route and status class",
    ("method", "route", "status_class"), buckets=LATENCY_BUCKETS,
)

# --- chats ----------------------------------------------------------------------------------------
CHAT_MODES = ("llm", "retrieval_only")
CHAT_OUTCOMES = ("ok", "client_error", "rejected", "upstream_error", "cancelled", "error")
CHAT_REQUESTS = Counter("gateway_chat_requests_total", "Chat completions answered, by mode and outcome",
                        ("mode", "outcome"))
SOURCE_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24)
ANSWER_SOURCES = Histogram("gateway_chat_answer_sources", "Sources an answered chat cites", ("mode",),
                           buckets=SOURCE_BUCKETS)
ANSWERS_WITHOUT_SOURCES = Counter("gateway_chat_answers_without_sources_total",
                                  "Answered chats that cite no source", ("mode",))
CHATS_IN_FLIGHT = Gauge("gateway_chats_in_flight", "Chats holding a slot (LLM_MAX_CONCURRENCY)")
CHATS_QUEUED = Gauge("gateway_chats_queued", "Chats waiting for a slot (LLM_MAX_QUEUE)")

# --- the chat's sources (fan-out to scraper and retriever) ---------------------------------------
BACKENDS = ("scraper", "retriever")
BACKEND_OUTCOMES = ("ok", "failed", "timeout")
BACKEND_SECONDS = Histogram("gateway_backend_request_duration_seconds",
                            "Seconds a chat waited for one backend, by backend and outcome", ("backend", "outcome"),
                            buckets=LATENCY_BUCKETS)

# --- the LLM ---------------------------------------------------------------------------------------
STREAMS = ("true", "false")
# ok, or the LLM adapter's error code without its `llm_` prefix; cancelled: the caller went away.
LLM_OUTCOMES = ("ok", "timeout", "unavailable", "rate_limited", "rejected", "failed", "cancelled")
LLM_REQUESTS = Counter("gateway_llm_requests_total", "Calls to the LLM, by streaming and how they ended",
                       ("stream", "outcome"))
TIME_TO_FIRST_TOKEN = Histogram("gateway_llm_time_to_first_token_seconds",
                                "Seconds from a streamed LLM call to its first chunk", buckets=LATENCY_BUCKETS)
TOKEN_KINDS = ("prompt", "completion")
LLM_TOKENS = Counter("gateway_llm_tokens_total", "Tokens of the LLM calls (its usage report), by kind", ("kind",))

# --- jobs and documents ------------------------------------------------------------------------------
JOB_KINDS = ("image", "text")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
JOB_FINAL_STATUSES = ("succeeded", "failed", "cancelled")
JOB_OPEN_STATUSES = ("queued", "running")
JOBS_SUBMITTED = Counter("gateway_jobs_submitted_total", "Jobs accepted and queued", ("kind",))
JOBS_FINISHED = Counter("gateway_jobs_finished_total", "Jobs that reached a final state", ("kind", "status"))
TEXT_JOB_SECONDS = Histogram("gateway_text_job_duration_seconds", "LLM time of one batch text job",
                             buckets=LATENCY_BUCKETS)
# Counts of the database's records: every replica reports the same numbers (aggregate with max).
JOBS = Gauge("gateway_jobs", "Jobs by kind and status", ("kind", "status"))
JOB_OLDEST_AGE = Gauge("gateway_job_oldest_age_seconds", "Age of the oldest queued or running job (0: none)",
                       ("kind", "status"))
DOCUMENT_STATUSES = ("queued", "processing", "indexed", "failed")
DOCUMENT_OPEN_STATUSES = ("queued", "processing")
DOCUMENTS = Gauge("gateway_documents", "Documents by status", ("status",))
DOCUMENT_OLDEST_AGE = Gauge("gateway_document_oldest_age_seconds",
                            "Age of the oldest queued or processing document (0: none)", ("status",))


def _initialise(metric: MetricWrapperBase, *label_sets: Iterable[str]) -> None:
    combinations: list[tuple[str, ...]] = [()]
    for values in label_sets:
        combinations = [(*combo, value) for combo in combinations for value in values]
    for combo in combinations:
        metric.labels(*combo)


_initialise(CHAT_REQUESTS, CHAT_MODES, CHAT_OUTCOMES)
_initialise(ANSWER_SOURCES, CHAT_MODES)
_initialise(ANSWERS_WITHOUT_SOURCES, CHAT_MODES)
_initialise(BACKEND_SECONDS, BACKENDS, BACKEND_OUTCOMES)
_initialise(LLM_REQUESTS, STREAMS, LLM_OUTCOMES)
_initialise(LLM_TOKENS, TOKEN_KINDS)
_initialise(JOBS_SUBMITTED, JOB_KINDS)
_initialise(JOBS_FINISHED, JOB_KINDS, JOB_FINAL_STATUSES)
_initialise(JOBS, JOB_KINDS, JOB_STATUSES)
_initialise(JOB_OLDEST_AGE, JOB_KINDS, JOB_OPEN_STATUSES)
_initialise(DOCUMENTS, DOCUMENT_STATUSES)
_initialise(DOCUMENT_OLDEST_AGE, DOCUMENT_OPEN_STATUSES)


def initialise_http(routes: Iterable[tuple[str, str]]) -> None:
    """Create the HTTP series of every (method, route) the app serves, and of unmatched paths."""
    for method, path in [*routes, *((m, UNMATCHED) for m in (*HTTP_METHODS, "other"))]:
        if path not in UNTIMED_PATHS:
            for status_class in STATUS_CLASSES:
                HTTP_SECONDS.labels(method, path, status_class)


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    if route in UNTIMED_PATHS:
        return
    if method not in HTTP_METHODS:
        method = "other"  # the method is the client's to choose: never a label value as given
    _child(HTTP_SECONDS, method, route, f"{min(max(status // 100, 2), 5)}xx").observe(seconds)


def observe_backend(backend: str, outcome: str, seconds: float) -> None:
    _child(BACKEND_SECONDS, backend, outcome).observe(seconds)


def observe_chat(mode: str, outcome: str) -> None:
    _child(CHAT_REQUESTS, mode, outcome).inc()


def observe_answer(mode: str, sources: int) -> None:
    _child(ANSWER_SOURCES, mode).observe(sources)
    if sources == 0:
        _child(ANSWERS_WITHOUT_SOURCES, mode).inc()


def observe_llm_call(stream: bool, outcome: str) -> None:
    _child(LLM_REQUESTS, "true" if stream else "false", outcome).inc()


def observe_tokens(usage: object) -> None:
    """The `usage` object of an LLM answer: {"prompt_tokens": n, "completion_tokens": m, ...}."""
    if isinstance(usage, dict):
        for kind in TOKEN_KINDS:
            count = usage.get(f"{kind}_tokens")
            if isinstance(count, int) and count > 0:
                _child(LLM_TOKENS, kind).inc(count)


def llm_outcome(error: ServiceError) -> str:
    """The `outcome` of an LLM call that failed with the adapter's error (code `llm_<outcome>`)."""
    outcome = (error.code or "").removeprefix("llm_")
    return outcome if outcome in LLM_OUTCOMES else "failed"


def chat_outcome(exc: Exception) -> str:
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


M = TypeVar("M", Counter, Gauge, Histogram)
_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def _child(metric: M, *labels: str) -> M:
    key = (id(metric), labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return cast(M, child)
