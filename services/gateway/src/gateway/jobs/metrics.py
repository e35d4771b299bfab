"""The jobs feature's Prometheus metrics (`gateway_<noun>_<unit>`, small closed label sets)."""

from __future__ import annotations

from prometheus_client import Counter

from genai_common.metrics import latency_histogram

# kind: image, text
SUBMITTED = Counter("gateway_jobs_submitted_total", "Jobs accepted and queued", ("kind",))
# status: succeeded, failed, cancelled
FINISHED = Counter("gateway_jobs_finished_total", "Jobs that reached a final state", ("kind", "status"))
TEXT_JOB_SECONDS = latency_histogram("gateway_text_job_duration_seconds", "LLM time of one batch text job")
