"""The platform's Grafana dashboards, written as JSON into helm/genai/dashboards/ (`make dashboards`).

Each dashboard reads Prometheus only through its `${datasource}` variable, is scoped to one
`$namespace`, and breaks our services' panels down by version (`app_kubernetes_io_version`, the
pod label that the ServiceMonitors carry over) with a `$version` filter. A test checks that the
committed JSON is what this script writes; the ops check (tests/ops) proves every query has data.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "helm" / "genai" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
VERSION = "app_kubernetes_io_version"
NS = 'namespace="$namespace"'
OURS = f'{NS},{VERSION}=~"$version"'
API = f'{OURS},route=~"/v1/.+"'
# Work queues: their dead-letter and retry queues have no consumers by design.
WORK_QUEUES = f'{NS},queue!~".+\\\\.(dlq|retry\\\\..+)"'
DEAD_LETTER_QUEUES = f'{NS},queue=~".+\\\\.dlq"'
GRPC_SERVER_ERRORS = "INTERNAL|UNKNOWN|UNAVAILABLE|DEADLINE_EXCEEDED|DATA_LOSS|UNIMPLEMENTED"


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    targets: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | stat | table
    width: int = 12


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel] = field(default_factory=list)


def p95(metric: str, matchers: str, by: str = VERSION) -> str:
    return f"histogram_quantile(0.95, sum by (le, {by}) (rate({metric}_bucket{{{matchers}}}[{RATE}])))"


def rate(metric: str, matchers: str, by: str = VERSION) -> str:
    return f"sum by ({by}) (rate({metric}{{{matchers}}}[{RATE}]))"


def per_version(legend: str = "") -> str:
    return "{{" + VERSION + "}}" + (f" {legend}" if legend else "")


def overview() -> Dashboard:
    http = "gateway_http_request_duration_seconds"
    errors = rate(f"{http}_count", API + ',status_class="5xx"')
    about = "Traffic, errors and latency of the platform, per version."
    return Dashboard("genai-overview", "genai / overview", about, [
        Panel("Requests per second", "Every /v1 request the gateway answered.",
              [(rate(f"{http}_count", API), per_version())], "reqps"),
        Panel("Share of requests answered with a 5xx", "What the availability SLO counts.",
              [(f"{errors} / {rate(f'{http}_count', API)}", per_version())], "percentunit"),
        Panel("p95 time until a response starts", "Chat completions aside (time to first token judges those).",
              [(p95(http, API + ',route!="/v1/chat/completions"'), per_version())], "s"),
        Panel("p95 time to first token", "From the gateway's LLM call to the first streamed token.",
              [(p95("gateway_llm_time_to_first_token_seconds", OURS), per_version())], "s"),
        Panel("Chats by outcome", "ok, client_error, rejected (overload), upstream_error, cancelled, error.",
              [(rate("gateway_chat_requests_total", OURS, f"{VERSION}, outcome"), per_version("{{outcome}}"))],
              "reqps"),
        Panel("SLO: bad share over the last hour", "5xx share and slow share of /v1 requests (recording rules).",
              [(f"namespace:gateway_http_errors:ratio_rate1h{{{NS}}}", "5xx"),
               (f"namespace:gateway_http_slow:ratio_rate1h{{{NS}}}", "slow")], "percentunit"),
        Panel("Queue backlog", "Messages ready in each work queue.",
              [(f"sum by (queue) (rabbitmq_detailed_queue_messages_ready{{{WORK_QUEUES}}})", "{{queue}}")]),
        Panel("Dead letters", "Messages in each dead-letter queue: work a worker gave up on.",
              [(f"sum by (queue) (rabbitmq_detailed_queue_messages{{{DEAD_LETTER_QUEUES}}})", "{{queue}}")]),
        Panel("Versions running", "Processes per service and version.",
              [(f"count by (service, version, {VERSION}) (genai_build_info{{{OURS}}})", "")], kind="table",
              width=24),
    ])


def llm_traffic() -> Dashboard:
    vllm = NS  # vLLM's own version is not ours: its panels are not filtered by $version
    return Dashboard("genai-llm", "genai / LLM traffic", "Chats, the LLM calls behind them and vLLM itself.", [
        Panel("Chats per second", "By mode: llm or retrieval_only.",
              [(rate("gateway_chat_requests_total", OURS, f"{VERSION}, mode"), per_version("{{mode}}"))], "reqps"),
        Panel("Chats that failed", "Every outcome but ok.",
              [(rate("gateway_chat_requests_total", OURS + ',outcome!="ok"', f"{VERSION}, outcome"),
                per_version("{{outcome}}"))], "reqps"),
        Panel("LLM calls by outcome", "ok, timeout, unavailable, rate_limited, rejected, failed, cancelled.",
              [(rate("gateway_llm_requests_total", OURS, f"{VERSION}, stream, outcome"),
                per_version("stream={{stream}} {{outcome}}"))], "reqps"),
        Panel("Time to first token", "p95 seen by the gateway, and vLLM's own.",
              [(p95("gateway_llm_time_to_first_token_seconds", OURS), per_version("gateway p95")),
               (p95("vllm:time_to_first_token_seconds", vllm, "model_name"), "vLLM {{model_name}} p95")], "s"),
        Panel("Tokens per second", "Prompt and completion tokens of the gateway's LLM calls.",
              [(rate("gateway_llm_tokens_total", OURS, f"{VERSION}, kind"), per_version("{{kind}}"))]),
        Panel("Chats in flight and queued", "Against LLM_MAX_CONCURRENCY and LLM_MAX_QUEUE, summed over replicas.",
              [(f"sum by ({VERSION}) (gateway_chats_in_flight{{{OURS}}})", per_version("in flight")),
               (f"sum by ({VERSION}) (gateway_chats_queued{{{OURS}}})", per_version("queued"))]),
        Panel("vLLM requests running and waiting", "Waiting requests are what KEDA scales vLLM on.",
              [(f"sum by (model_name) (vllm:num_requests_running{{{vllm}}})", "{{model_name}} running"),
               (f"sum by (model_name) (vllm:num_requests_waiting{{{vllm}}})", "{{model_name}} waiting")]),
        Panel("vLLM KV cache use", "Per replica; near 1, requests wait or are preempted.",
              [(f"max by (pod, model_name) (vllm:kv_cache_usage_perc{{{vllm}}})", "{{pod}}")], "percentunit"),
        Panel("vLLM tokens per second", "Prompt tokens processed and tokens generated.",
              [(rate("vllm:prompt_tokens_total", vllm, "model_name"), "{{model_name}} prompt"),
               (rate("vllm:generation_tokens_total", vllm, "model_name"), "{{model_name}} generated")]),
        Panel("vLLM requests finished", "By finish reason (stop, length, abort).",
              [(rate("vllm:request_success_total", vllm, "model_name, finished_reason"),
                "{{model_name}} {{finished_reason}}")], "reqps"),
    ])


def rag_and_ingest() -> Dashboard:
    backend = "gateway_backend_request_duration_seconds"
    sources = "gateway_chat_answer_sources"
    return Dashboard("genai-rag", "genai / RAG and ingest", "Sources of answers, the backends and document ingest.", [
        Panel("Sources per answer", "Average number of sources an answer cites.",
              [(f"{rate(f'{sources}_sum', OURS)} / {rate(f'{sources}_count', OURS)}", per_version())]),
        Panel("Share of answers without sources", "Answers that cite nothing (what the canary check judges).",
              [(f"{rate('gateway_chat_answers_without_sources_total', OURS)} / {rate(f'{sources}_count', OURS)}",
                per_version())], "percentunit"),
        Panel("Backend fan-out latency (p95)", "Scraper and retriever calls of a chat.",
              [(p95(backend, OURS, f"{VERSION}, backend"), per_version("{{backend}}"))], "s"),
        Panel("Backend calls that failed", "A chat goes on without a backend that failed or timed out.",
              [(rate(f"{backend}_count", OURS + ',outcome!="ok"', f"{VERSION}, backend, outcome"),
                per_version("{{backend}} {{outcome}}"))], "reqps"),
        Panel("Scraper outcomes", "URLs fetched, by outcome.",
              [(rate("scraper_fetches_total", OURS, f"{VERSION}, outcome"), per_version("{{outcome}}"))], "reqps"),
        Panel("Scraper blocks", "URLs the SSRF guard refused, by reason.",
              [(rate("scraper_blocked_total", OURS, f"{VERSION}, reason"), per_version("{{reason}}"))], "reqps"),
        Panel("Scraper bytes fetched", "Response bytes read from the web.",
              [(rate("scraper_fetched_bytes_total", OURS), per_version())], "Bps"),
        Panel("Retriever search latency (p95)", "By search mode, embedding included.",
              [(p95("retriever_search_duration_seconds", OURS, f"{VERSION}, mode"), per_version("{{mode}}"))], "s"),
        Panel("Retriever collection size", "Points (chunks) in the vector collection.",
              [(f"max by ({VERSION}) (retriever_collection_points{{{OURS}}})", per_version())]),
        Panel("Ingest stages (p95)", "Parsing, chunking, embedding and indexing of one document.",
              [(p95("ingest_stage_duration_seconds", OURS, f"{VERSION}, stage"), per_version("{{stage}}"))], "s"),
        Panel("Ingest queue wait (p95)", "From upload to the worker taking the document.",
              [(p95("ingest_queue_wait_seconds", OURS), per_version())], "s"),
        Panel("Documents handled by ingest", "By outcome.",
              [(rate("ingest_documents_total", OURS, f"{VERSION}, outcome"), per_version("{{outcome}}"))], "reqps"),
        Panel("Documents by status", "Records in the gateway's database (every replica reports them: max).",
              [(f"max by (status) (gateway_documents{{{NS}}})", "{{status}}")]),
        Panel("Ingest backlog and dead letters", "Ready messages of the ingest queue and its dead-letter queue.",
              [(f'sum by (queue) (rabbitmq_detailed_queue_messages_ready{{{NS},queue=~"ingest\\\\..+"}})',
                "{{queue}} ready")]),
    ])


def jobs_and_gpu() -> Dashboard:
    return Dashboard("genai-jobs", "genai / jobs and GPU", "Background jobs, the image worker and its GPUs.", [
        Panel("Jobs submitted", "By kind.",
              [(rate("gateway_jobs_submitted_total", OURS, f"{VERSION}, kind"), per_version("{{kind}}"))], "reqps"),
        Panel("Jobs finished", "By kind and final status.",
              [(rate("gateway_jobs_finished_total", OURS, f"{VERSION}, kind, status"),
                per_version("{{kind}} {{status}}"))], "reqps"),
        Panel("Jobs by status", "Records in the gateway's database (every replica reports them: max).",
              [(f"max by (kind, status) (gateway_jobs{{{NS}}})", "{{kind}} {{status}}")]),
        Panel("Oldest unfinished job", "Age of the oldest queued or running job.",
              [(f"max by (kind, status) (gateway_job_oldest_age_seconds{{{NS}}})", "{{kind}} {{status}}")], "s"),
        Panel("Image queue wait (p95)", "From submission to a worker starting the job.",
              [(p95("imagegen_queue_wait_seconds", OURS), per_version())], "s"),
        Panel("Denoising step time", "p50 and p95 of one step (all images of the batch).",
              [(p95("imagegen_step_duration_seconds", OURS), per_version("p95")),
               (f"histogram_quantile(0.5, sum by (le, {VERSION}) "
                f"(rate(imagegen_step_duration_seconds_bucket{{{OURS}}}[{RATE}])))", per_version("p50"))], "s"),
        Panel("Image job duration (p95)", "One delivery from start to its outcome.",
              [(p95("imagegen_job_duration_seconds", OURS), per_version())], "s"),
        Panel("Image jobs by outcome", "succeeded, failed, cancelled.",
              [(rate("imagegen_jobs_total", OURS, f"{VERSION}, outcome"), per_version("{{outcome}}"))], "reqps"),
        Panel("Images per second and busy workers", "Images stored; workers rendering right now.",
              [(rate("imagegen_images_total", OURS), per_version("images/s")),
               (f"sum by ({VERSION}) (imagegen_busy{{{OURS}}})", per_version("busy"))]),
        Panel("Text job duration (p95)", "LLM time of one batch text prompt.",
              [(p95("gateway_text_job_duration_seconds", OURS), per_version())], "s"),
        Panel("GPU utilisation", "dcgm-exporter, per pod of the release.",
              [(f"avg by (pod) (DCGM_FI_DEV_GPU_UTIL{{{NS}}})", "{{pod}}")], "percent"),
        Panel("Image job backlog", "Ready messages of the image queue.",
              [(f'sum by (queue) (rabbitmq_detailed_queue_messages_ready{{{NS},queue=~"imagegen\\\\..+"}})',
                "{{queue}}")]),
    ])


def platform_health() -> Dashboard:
    grpc_errors = f'{OURS},code=~"{GRPC_SERVER_ERRORS}"'
    return Dashboard("genai-platform", "genai / platform health", "Pods, restarts, scraping and the broker.", [
        Panel("Scrape targets up", "Every target Prometheus scrapes in the namespace.",
              [(f"sum by (job) (up{{{NS}}})", "{{job}}")]),
        Panel("Pods ready", "kube-state-metrics: ready pods per workload.",
              [(f'sum by (pod) (kube_pod_status_ready{{{NS},condition="true"}})', "{{pod}}")]),
        Panel("Container restarts (1h)", "kube-state-metrics: restarts per pod in the last hour.",
              [(f"sum by (pod) (increase(kube_pod_container_status_restarts_total{{{NS}}}[1h]))", "{{pod}}")]),
        Panel("Queue consumers", "Consumers of each work queue (zero with ready messages: WorkQueueStalled).",
              [(f"sum by (queue) (rabbitmq_detailed_queue_consumers{{{WORK_QUEUES}}})", "{{queue}}")]),
        Panel("Queue messages ready and unacknowledged", "Per work queue.",
              [(f"sum by (queue) (rabbitmq_detailed_queue_messages_ready{{{WORK_QUEUES}}})", "{{queue}} ready"),
               (f"sum by (queue) (rabbitmq_detailed_queue_messages_unacked{{{WORK_QUEUES}}})",
                "{{queue}} unacked")]),
        Panel("Broker connections", "Client connections to RabbitMQ.",
              [(f"sum by (pod) (rabbitmq_connections{{{NS}}})", "{{pod}}")]),
        Panel("Resident memory", "Per service and version.",
              [(f"sum by (service, {VERSION}) (process_resident_memory_bytes{{{OURS}}} * on (pod, instance) "
                f"group_left (service) genai_build_info{{{OURS}}})", "{{service}} {{" + VERSION + "}}")], "bytes"),
        Panel("CPU", "Cores used per service and version.",
              [(f"sum by (service, {VERSION}) (rate(process_cpu_seconds_total{{{OURS}}}[{RATE}]) * on (pod, instance) "
                f"group_left (service) genai_build_info{{{OURS}}})", "{{service}} {{" + VERSION + "}}")]),
        Panel("gRPC server errors", "Scraper and retriever requests that failed on the server side.",
              [(rate("scraper_grpc_request_duration_seconds_count", grpc_errors, f"{VERSION}, method, code"),
                per_version("scraper {{method}} {{code}}")),
               (rate("retriever_grpc_request_duration_seconds_count", grpc_errors, f"{VERSION}, method, code"),
                per_version("retriever {{method}} {{code}}"))], "reqps"),
    ])


DASHBOARDS = (overview, llm_traffic, rag_and_ingest, jobs_and_gpu, platform_health)


def _variables() -> list[dict[str, Any]]:
    def query(name: str, label: str, expr: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE, "refresh": 2,
                "definition": expr, "query": {"query": expr, "refId": f"{name}-variable"}, "sort": 1,
                "current": {}, "hide": 0, **extra}
    return [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "current": {},
         "hide": 0, "refresh": 1},
        query("namespace", "Namespace", "label_values(genai_build_info, namespace)"),
        query("version", "Version", f'label_values(genai_build_info{{{NS}}}, {VERSION})', multi=True,
              includeAll=True, allValue=".*"),
    ]


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": panel_id, "type": panel.kind, "title": panel.title, "description": panel.description,
        "datasource": DATASOURCE, "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend,
                     **({"format": "table", "instant": True} if panel.kind == "table" else {})}
                    for i, (expr, legend) in enumerate(panel.targets)],
    }
    if panel.kind == "timeseries":
        body["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    return body


def render(dashboard: Dashboard) -> dict[str, Any]:
    panels, x, y = [], 0, 0
    for number, panel in enumerate(dashboard.panels, start=1):
        if x + panel.width > 24:
            x, y = 0, y + 8
        panels.append(_panel(panel, number, x, y))
        x += panel.width
    return {
        "uid": dashboard.uid, "title": dashboard.title, "description": dashboard.description, "tags": ["genai"],
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"}, "timezone": "browser",
        "templating": {"list": _variables()}, "annotations": {"list": []}, "panels": panels,
    }


def rendered() -> dict[str, str]:
    """file name -> JSON text, for every dashboard."""
    return {f"{d.uid}.json": json.dumps(render(d), indent=2, sort_keys=True) + "\n"
            for d in (make() for make in DASHBOARDS)}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    files = rendered()
    for stale in OUT.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(files)} dashboards to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
