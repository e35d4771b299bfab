"""The AMQP edge of batch text: `text.job.requested` in, one TextJobWorker call per message.

The consumer's prefetch is TEXT_JOB_CONCURRENCY, so with three slots a fourth prompt waits in
the queue and its job shows `queued`. When the queue's retry policy gives up on a message,
`give_up` fails the job with the reason.
"""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractIncomingMessage

from gateway.jobs.text_worker import TextJobWorker, TextTask
from genai.events.v1 import events_pb2
from genai_common.amqp import TEXT_JOB_REQUESTED, QueueSpec, RetryPolicy, decode, job_id_of

log = logging.getLogger(__name__)


class TextJobHandler:
    def __init__(self, worker: TextJobWorker) -> None:
        self._worker = worker

    def queue(self, name: str, *, concurrency: int, retry: RetryPolicy, max_length: int | None = None) -> QueueSpec:
        """The queue this handler consumes, its give-up hook attached."""
        return QueueSpec(name, (TEXT_JOB_REQUESTED,), prefetch=concurrency, retry=retry, on_give_up=self.give_up,
                         max_length=max_length)

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        event = decode(message, events_pb2.TextJobRequested)
        await self._worker.process(TextTask(event.job_id, event.prompt, event.max_tokens, event.temperature))

    async def give_up(self, message: AbstractIncomingMessage, reason: str) -> None:
        """The queue's give-up hook: the job fails with the reason."""
        job_id = job_id_of(message, events_pb2.TextJobRequested)
        if not job_id:
            log.error("gave up on a text job message without a job id: %s", reason)
            return
        await self._worker.fail(job_id, reason)
