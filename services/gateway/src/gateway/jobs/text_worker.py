"""Batch text: one job's prompt answered by the LLM, its record moved to running and then final.

Runs in the gateway process (its records are the gateway's), fed by `jobs.consumer`. A job
cancelled before its turn is skipped; one cancelled while the LLM answers keeps its `cancelled`
state (the answer is dropped). A refusal by the LLM (InvalidInput) fails the job at once; any
other LLM failure propagates, and the queue's policy retries the message with back-off
(TEXT_JOB_RETRY_ATTEMPTS / TEXT_JOB_RETRY_BUDGET_SECONDS) until it gives up and `fail`s the job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.llm import Message
from gateway.metrics import TEXT_JOB_SECONDS
from gateway.progress import JobState, ProgressReport
from genai_common.errors import InvalidInput

log = logging.getLogger(__name__)

STAGE = "generating"
NO_TEXT = "the language model sent an answer with no text"


class ChatModel(Protocol):
    """The LLM (`gateway.llm.LLM`); a failed call raises a `genai_common.errors.ServiceError`."""

    async def complete(self, messages: Sequence[Message], params: dict[str, Any]) -> dict[str, Any]: ...


class JobRecords(Protocol):
    async def apply(self, change: ProgressReport) -> bool: ...


@dataclass(frozen=True)
class TextTask:
    job_id: str
    prompt: str
    max_tokens: int
    temperature: float


def _answer_text(body: dict[str, Any]) -> str | None:
    """The first choice's text ("" for an empty answer); None when the body has no choice to read."""
    try:
        return body["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        return None


class TextJobWorker:
    def __init__(self, records: JobRecords, llm: ChatModel) -> None:
        self._records, self._llm = records, llm

    async def process(self, task: TextTask) -> None:
        """Returns when the job's record is final (or the job was skipped); raises the LLM's
        error when it failed in a way worth retrying."""
        # Moves a queued (or redelivered running) job to running; a cancelled, finished or unknown one stays.
        if not await self._records.apply(ProgressReport(task.job_id, JobState.RUNNING, stage=STAGE)):
            log.info("text job skipped (cancelled, finished or unknown)", extra={"job_id": task.job_id})
            return
        started = time.monotonic()
        try:
            body = await self._llm.complete([{"role": "user", "content": task.prompt}],
                                            {"max_tokens": task.max_tokens, "temperature": task.temperature})
        except InvalidInput as exc:
            await self.fail(task.job_id, exc.message)
            return
        finally:
            TEXT_JOB_SECONDS.observe(time.monotonic() - started)
        text = _answer_text(body)
        if text is None:
            await self.fail(task.job_id, NO_TEXT)
            return
        await self._records.apply(ProgressReport(task.job_id, JobState.SUCCEEDED, 100, output_text=text))

    async def fail(self, job_id: str, reason: str) -> None:
        await self._records.apply(ProgressReport(job_id, JobState.FAILED, reason=reason))
