"""Batch text: answers `text.job.requested` with the LLM, a bounded number at a time.

Runs in the gateway process (its records are the gateway's); the consumer's prefetch is
TEXT_JOB_CONCURRENCY, so with three slots a fourth prompt waits in the queue and its job shows
`queued`. A job cancelled before its turn is skipped; one cancelled while the LLM answers keeps
its `cancelled` state (the answer is dropped). Transient LLM failures are retried by the queue's
policy (back-off on the broker, TEXT_JOB_RETRY_ATTEMPTS / TEXT_JOB_RETRY_BUDGET_SECONDS); when it
gives up, `give_up` fails the job with the reason. A refusal (400) fails the job at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from aio_pika.abc import AbstractIncomingMessage

from gateway.chat.llm import LLM, UpstreamError
from gateway.jobs.metrics import TEXT_JOB_SECONDS
from gateway.jobs.models import Status, Update
from genai.events.v1 import events_pb2
from genai_common.amqp import PermanentFailure, decode, header_text
from genai_common.errors import ServiceError

log = logging.getLogger(__name__)

STAGE = "generating"


class CompletionFailed(ServiceError):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Completer(Protocol):
    async def complete(self, prompt: str, max_tokens: int, temperature: float) -> str: ...


class JobRecords(Protocol):
    async def apply(self, change: Update) -> bool: ...


@dataclass(frozen=True)
class TextTask:
    job_id: str
    prompt: str
    max_tokens: int
    temperature: float


class LLMCompleter:
    """One user message in, the first choice's text out, through the chat feature's LLM adapter."""

    def __init__(self, llm: LLM) -> None:
        self._llm = llm

    async def complete(self, prompt: str, max_tokens: int, temperature: float) -> str:
        try:
            body = await self._llm.complete([{"role": "user", "content": prompt}],
                                            {"max_tokens": max_tokens, "temperature": temperature})
        except UpstreamError as exc:
            raise CompletionFailed(exc.message, retryable=exc.status != 400) from exc
        try:
            return body["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise CompletionFailed("the language model sent an answer with no text", retryable=False) from exc


class TextJobWorker:
    def __init__(self, records: JobRecords, completer: Completer) -> None:
        self._records, self._completer = records, completer

    async def process(self, task: TextTask) -> None:
        """Returns when the job's record is final (or the job was skipped); raises CompletionFailed
        when the LLM failed in a way worth retrying."""
        # Moves a queued (or redelivered running) job to running; a cancelled, finished or unknown one stays.
        if not await self._records.apply(Update(task.job_id, Status.RUNNING, 0, stage=STAGE)):
            log.info("text job skipped (cancelled, finished or unknown)", extra={"job_id": task.job_id})
            return
        started = time.monotonic()
        try:
            text = await self._completer.complete(task.prompt, task.max_tokens, task.temperature)
        except CompletionFailed as exc:
            if exc.retryable:
                raise
            await self.fail(task.job_id, exc.message)
            return
        finally:
            TEXT_JOB_SECONDS.observe(time.monotonic() - started)
        await self._records.apply(Update(task.job_id, Status.SUCCEEDED, 100, output_text=text))

    async def fail(self, job_id: str, reason: str) -> None:
        await self._records.apply(Update(job_id, Status.FAILED, reason=reason))


class TextJobHandler:
    """The AMQP edge of TextJobWorker."""

    def __init__(self, worker: TextJobWorker) -> None:
        self._worker = worker

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        event = decode(message, events_pb2.TextJobRequested)
        await self._worker.process(TextTask(event.job_id, event.prompt, event.max_tokens, event.temperature))

    async def give_up(self, message: AbstractIncomingMessage, reason: str) -> None:
        """The queue's give-up hook: the job fails with the reason."""
        job_id = header_text(message, "job_id")
        if not job_id:
            try:
                job_id = decode(message, events_pb2.TextJobRequested).job_id
            except PermanentFailure:
                log.error("gave up on a text job message without a job id: %s", reason)
                return
        await self._worker.fail(job_id, reason)
