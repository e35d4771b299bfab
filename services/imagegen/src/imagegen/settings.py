"""imagegen settings: the only place the worker reads its environment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from genai_common.settings import AmqpSettings, BlobSettings, CommonSettings

TINY_RANDOM = "tiny-random"


class ImagegenSettings(AmqpSettings, BlobSettings, CommonSettings):
    # An SDXL model: a hub id (read from the local cache; the hub itself is never contacted when
    # HF_HUB_OFFLINE=1) or a local directory. `tiny-random` builds a small SDXL-shaped pipeline with
    # random weights and no download: it draws noise, for tests and CPU demos.
    imagegen_model: str = "stabilityai/stable-diffusion-xl-base-1.0"
    # Weight file variant to load (e.g. "fp16" for the hub SDXL repositories); none for a local dir.
    imagegen_variant: str | None = None
    # auto: cuda when present, else cpu.
    imagegen_device: str = "auto"
    # auto: float16 on CUDA, float32 on CPU.
    imagegen_dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"

    # torch's intra-op CPU threads (0: torch's default, one per core). One keeps a worker from
    # oversubscribing a shared node, where every extra thread makes small ops wait on each other;
    # raise it only for CPU inference on cores of its own. The GPU does the real work either way.
    imagegen_cpu_threads: int = Field(default=1, ge=0)

    imagegen_metrics_host: str = "127.0.0.1"
    imagegen_metrics_port: int = 9104

    # The quorum work queue bound to `image.job.requested` (tests give each session its own).
    imagegen_queue: str = "imagegen.image-jobs"
    # A job whose run fails (blob store or broker down) is retried with back-off; after this many
    # attempts or this long since the first failure it is recorded as failed and dead-lettered.
    imagegen_retry_attempts: int = Field(default=5, ge=1)
    imagegen_retry_budget_seconds: float = Field(default=900.0, gt=0)
    # Image jobs waiting in the queue at most; past it the broker refuses new jobs and the gateway
    # answers 503 with Retry-After. Applies when the queue is first declared.
    imagegen_queue_max_length: int = Field(default=1000, ge=1)

    # Limits a job must respect; a job outside them fails at once (it can never succeed).
    imagegen_max_images: int = Field(default=8, ge=1)
    imagegen_max_steps: int = Field(default=150, ge=1)
    imagegen_max_side: int = Field(default=2048, ge=64)

    # Progress events: at most one per interval, unless progress moved by min_delta points.
    imagegen_progress_interval_seconds: float = Field(default=0.5, ge=0)
    imagegen_progress_min_delta: int = Field(default=5, ge=1)
