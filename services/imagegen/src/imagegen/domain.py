"""The worker's domain vocabulary: an image job, the limits it must respect, the updates it reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

SEED_MODULUS = 2**64


class JobState(str, Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class InvalidJob(Exception):
    """The job can never succeed as given (bad size, too many images...)."""


class JobCancelled(Exception):
    """A user cancelled the job; raised from the step callback to stop denoising at once."""


class OutOfMemory(Exception):
    """The accelerator ran out of memory for this job; memory was freed and the worker goes on."""


class WorkerStopping(Exception):
    """The worker is shutting down and the grace period is over: stop now, the job is requeued."""


@dataclass(frozen=True)
class Limits:
    max_images: int
    max_steps: int
    max_side: int


@dataclass(frozen=True)
class ImageJob:
    job_id: str
    prompt: str
    negative_prompt: str
    n: int
    width: int
    height: int
    steps: int
    guidance: float
    seed: int

    def image_key(self, index: int) -> str:
        return f"images/{self.job_id}/{index}.png"

    @property
    def image_keys(self) -> list[str]:
        return [self.image_key(i) for i in range(self.n)]

    def image_seed(self, index: int) -> int:
        """Image i uses seed + i, so each image is reproducible on its own."""
        return (self.seed + index) % SEED_MODULUS

    def validate(self, limits: Limits) -> None:
        if not self.job_id:
            raise InvalidJob("the job has no id")
        if not self.prompt.strip():
            raise InvalidJob("the prompt is empty")
        if not 1 <= self.n <= limits.max_images:
            raise InvalidJob(f"n must be between 1 and {limits.max_images}, got {self.n}")
        if not 1 <= self.steps <= limits.max_steps:
            raise InvalidJob(f"steps must be between 1 and {limits.max_steps}, got {self.steps}")
        for name, side in (("width", self.width), ("height", self.height)):
            if not 64 <= side <= limits.max_side or side % 8:
                raise InvalidJob(f"{name} must be a multiple of 8 between 64 and {limits.max_side}, got {side}")
        if self.guidance < 0:
            raise InvalidJob(f"guidance must not be negative, got {self.guidance}")


@dataclass(frozen=True)
class JobUpdate:
    """What the worker tells the job's owner (the gateway): state, progress 0-100, results."""

    job_id: str
    state: JobState
    progress: int
    stage: str = ""
    reason: str = ""
    result_keys: tuple[str, ...] = ()
    stage_seconds: dict[str, float] = field(default_factory=dict)
