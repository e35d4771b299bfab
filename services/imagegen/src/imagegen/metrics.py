"""imagegen's Prometheus metrics (`imagegen_<noun>_<unit>`, small closed label sets; every label
combination exists from the start)."""

from __future__ import annotations

import time

from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter, Gauge, Histogram

from genai_common.loop_lag import lag_histogram

OUTCOMES = ("succeeded", "failed", "cancelled")

# A loop that runs late misses AMQP heartbeats (the broker drops the connection at two missed).
LOOP_LAG_SECONDS = lag_histogram("imagegen")

# outcome: succeeded, failed, cancelled (a job requeued at shutdown has no outcome yet).
JOBS = Counter("imagegen_jobs_total", "Image jobs finished, by outcome", ("outcome",))
STEP_SECONDS = Histogram(
    "imagegen_step_duration_seconds", "Wall time of one denoising step (all images of the step's batch)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOB_SECONDS = Histogram(
    "imagegen_job_duration_seconds", "Wall time of one job delivery, from start to its outcome",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
IMAGES = Counter("imagegen_images_total", "Images rendered and stored")
BUSY = Gauge("imagegen_busy", "1 while a job is being rendered")
QUEUE_WAIT_SECONDS = Histogram(
    "imagegen_queue_wait_seconds", "From the job's submission to a worker starting it (first delivery)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)

for _outcome in OUTCOMES:
    JOBS.labels(_outcome)


def observe_queue_wait(submitted_at: Timestamp) -> None:
    """The wait since `submitted_at` (an event without the time is not observed)."""
    if submitted_at.seconds or submitted_at.nanos:
        QUEUE_WAIT_SECONDS.observe(max(0.0, time.time() - submitted_at.ToNanoseconds() / 1e9))
