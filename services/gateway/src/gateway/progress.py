"""What a worker reports about a job, as the gateway's features see it (no protobuf here).

Ingest (documents), imagegen (image jobs) and the gateway's own text worker report progress;
`gateway.consumer` turns each `job.progress` event into a `ProgressReport` and hands it to the
feature that owns the record. Records only move forward, so a report may arrive late or twice.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class JobState(enum.StrEnum):
    """Where a piece of background work stands (the states of `genai.events.v1.JobState`)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (JobState.QUEUED, JobState.RUNNING)
TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


@dataclass(frozen=True)
class ProgressReport:
    """One report about a job (a document's ingestion is one too), from whoever runs it."""

    job_id: str
    state: JobState
    progress: int = 0
    stage: str = ""
    # Why it failed, in words a person can act on.
    reason: str = ""
    # Documents: pages read and chunks indexed.
    pages: int = 0
    chunks: int = 0
    # Image jobs: blob keys of the results; text jobs: the answer.
    result_keys: tuple[str, ...] = ()
    output_text: str | None = None
    stage_seconds: Mapping[str, float] = field(default_factory=dict)
