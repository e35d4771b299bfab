"""The jobs API's wire shapes: request bodies (validated; a bad field answers 422 naming it) and
the job as JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.clock import unix_seconds
from gateway.jobs.domain import Job, Kind

HARD_MAX_IMAGES = 64
HARD_MAX_STEPS = 1000
HARD_MAX_PROMPT_CHARS = 100_000
HARD_MAX_TEXT_PROMPTS = 10_000


class ImageJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=HARD_MAX_PROMPT_CHARS)
    negative_prompt: str = Field(default="", max_length=HARD_MAX_PROMPT_CHARS)
    n: int = Field(default=1, ge=1, le=HARD_MAX_IMAGES)
    size: str | None = Field(default=None, pattern=r"^\d{2,5}x\d{2,5}$",
                             description="WIDTHxHEIGHT, one of the allowed sizes")
    steps: int | None = Field(default=None, ge=1, le=HARD_MAX_STEPS)
    guidance: float = Field(default=5.0, ge=0, le=30)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1, description="random (and recorded) when absent")


class TextJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompts: list[str] = Field(min_length=1, max_length=HARD_MAX_TEXT_PROMPTS)
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.7, ge=0, le=2)


def _unix(moment: datetime | None) -> int | None:
    return unix_seconds(moment) if moment is not None else None


def image_url(job_id: str, index: int) -> str:
    return f"/v1/jobs/{job_id}/images/{index}"


def job_json(job: Job) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": job.id, "object": "job", "kind": job.kind.value, "status": job.status.value,
        "progress": job.progress, "stage": job.stage or None, "params": job.params,
        "created_at": _unix(job.created_at), "started_at": _unix(job.started_at),
        "finished_at": _unix(job.finished_at),
        "error": {"message": job.error} if job.error else None,
    }
    if job.kind == Kind.IMAGE:
        body["results"] = [{"index": i, "url": image_url(job.id, i)} for i in range(len(job.result_keys))]
    else:
        body["output_text"] = job.output_text
    return body


def not_found_json(job_id: str) -> dict[str, Any]:
    return {"id": job_id, "object": "job", "status": "not_found"}
