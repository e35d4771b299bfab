"""Jobs as the rest of the feature sees them: what was asked, what was recorded, the limits."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.progress import TERMINAL, JobState


class Kind(enum.StrEnum):
    IMAGE = "image"
    TEXT = "text"


@dataclass(frozen=True)
class Job:
    id: str
    kind: Kind
    status: JobState
    progress: int
    stage: str
    params: dict[str, Any]
    result_keys: tuple[str, ...]
    output_text: str | None
    error: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class NewJob:
    id: str
    kind: Kind
    params: dict[str, Any]


@dataclass(frozen=True)
class JobLimits:
    """What this deployment lets a job ask for (JOBS_* settings)."""

    sizes: tuple[str, ...]
    max_images: int
    max_steps: int
    default_steps: int
    max_prompt_chars: int
    max_text_prompts: int
    max_text_tokens: int


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    negative_prompt: str = ""
    n: int = 1
    size: str | None = None
    steps: int | None = None
    guidance: float = 5.0
    seed: int | None = None


@dataclass(frozen=True)
class TextRequest:
    prompts: tuple[str, ...]
    max_tokens: int = 256
    temperature: float = 0.7


@dataclass(frozen=True)
class Submission:
    jobs: list[Job]
    created: bool  # False: an Idempotency-Key replay
