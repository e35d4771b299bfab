"""Batch text: answers `text.job.requested` with the LLM, a bounded number at a time.

Runs in the gateway process (its records are the gateway's); the consumer's prefetch is
TEXT_JOB_CONCURRENCY, so with three slots a fourth prompt waits in the queue and its job shows
`queued`. A job cancelled before its turn is skipped; one cancelled while the LLM answers keeps
its `cancelled` state (the answer is dropped). Transient LLM failures are retried (requeued
with a short back-off) up to TEXT_JOB_MAX_ATTEMPTS deliveries, then the job fails with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from aio_pika.abc import AbstractIncomingMessage

from genai.events.v1 import events_pb2
from genai_common.amqp import decode, delivery_count
from gateway.chat.llm import LLM, UpstreamError
from gateway.jobs.metrics import TEXT_JOB_SECONDS
from gateway.jobs.models import Status, Update

log = logging.getLogger(__name__)

STAGE = "generating"


class CompletionFailed(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message, self.retryable = message, retryable


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
    def __init__(self, records: JobRecords, completer: Completer, *, max_attempts: int,
                 retry_backoff: float = 1.0) -> None:
        self._records, self._completer = records, completer
        self._max_attempts, self._backoff = max_attempts, retry_backoff

    async def process(self, task: TextTask, attempt: int) -> None:
        """`attempt` counts from 0. Returns when the job's record is final (or the job was skipped);
        raises CompletionFailed to have the message redelivered."""
        # Moves a queued (or redelivered running) job to running; a cancelled, finished or unknown one stays.
        if not await self._records.apply(Update(task.job_id, Status.RUNNING, 0, stage=STAGE)):
            log.info("text job skipped (cancelled, finished or unknown)", extra={"job_id": task.job_id})
            return
        started = time.monotonic()
        try:
            text = await self._completer.complete(task.prompt, task.max_tokens, task.temperature)
        except CompletionFailed as exc:
            await self._failed(task, exc, attempt)
            return
        finally:
            TEXT_JOB_SECONDS.observe(time.monotonic() - started)
        await self._records.apply(Update(task.job_id, Status.SUCCEEDED, 100, output_text=text))

    async def _failed(self, task: TextTask, exc: CompletionFailed, attempt: int) -> None:
        if exc.retryable and attempt + 1 < self._max_attempts:
            log.warning("text job will be retried: %s", exc.message, extra={"job_id": task.job_id})
            await asyncio.sleep(self._backoff * 2**attempt)
            raise exc
        attempts = f" (after {attempt + 1} attempts)" if exc.retryable else ""
        await self._records.apply(Update(task.job_id, Status.FAILED, reason=f"{exc.message}{attempts}"))


class TextJobHandler:
    """The AMQP edge of TextJobWorker."""

    def __init__(self, worker: TextJobWorker) -> None:
        self._worker = worker

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        event = decode(message, events_pb2.TextJobRequested)
        task = TextTask(event.job_id, event.prompt, event.max_tokens, event.temperature)
        await self._worker.process(task, delivery_count(message))
