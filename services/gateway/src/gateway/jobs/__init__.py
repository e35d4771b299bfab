"""Gateway feature: long-running jobs (image generation by imagegen workers, batch text by the LLM).

`open_resources` builds the job service on `app.state.jobs`, queues jobs that a stopped gateway
recorded but never published, registers the `job.progress` appliers for image and text jobs,
and, when an LLM is configured, starts the batch-text consumer
(`TEXT_JOB_CONCURRENCY` at a time). Without an LLM, text submissions are refused with 503 at once
(nothing is queued that could never run). The consumer is stopped by the app's
`stop_consumers`; the LLM client is the chat feature's (`app.state.llm`).
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from fastapi import FastAPI

from genai.events.v1 import events_pb2
from genai_common.amqp import TEXT_JOB_REQUESTED, QueueSpec, RetryPolicy
from gateway.jobs.messaging import AmqpJobPublisher, ProgressApplier
from gateway.jobs.notify import JobWatchers
from gateway.jobs.prompt_filter import PromptFilter
from gateway.jobs.routes import router
from gateway.jobs.service import JobLimits, JobService
from gateway.jobs.store import JobStore
from gateway.jobs.text_worker import LLMCompleter, TextJobHandler, TextJobWorker
from gateway.settings import GatewaySettings

__all__ = ["open_resources", "router"]

log = logging.getLogger(__name__)


def _limits(settings: GatewaySettings) -> JobLimits:
    return JobLimits(
        sizes=tuple(settings.jobs_image_sizes), max_images=settings.jobs_max_images,
        max_steps=settings.jobs_max_steps, default_steps=settings.jobs_default_steps,
        max_prompt_chars=settings.jobs_max_prompt_chars, max_text_prompts=settings.jobs_max_text_prompts,
        max_text_tokens=settings.jobs_max_text_tokens,
    )


async def open_resources(app: FastAPI, settings: GatewaySettings, stack: AsyncExitStack) -> None:
    """Create this feature's long-lived clients on app.state; close them through `stack`."""
    llm = app.state.llm  # opened (and closed) by the chat feature
    if llm is None:
        log.warning("LLM_BASE_URL is unset: batch text jobs are refused (503)")
    service = JobService(
        JobStore(app.state.sessions), AmqpJobPublisher(app.state.amqp), PromptFilter(settings.jobs_blocked_terms),
        JobWatchers(), _limits(settings), text_enabled=llm is not None,
    )
    app.state.jobs = service
    await service.republish_stale()
    applier = ProgressApplier(service)
    app.state.progress.register(events_pb2.JOB_KIND_IMAGE, applier)
    app.state.progress.register(events_pb2.JOB_KIND_TEXT, applier)
    if llm is not None:
        handler = TextJobHandler(TextJobWorker(service, LLMCompleter(llm)))
        retry = RetryPolicy(attempts=settings.text_job_retry_attempts,
                            budget_seconds=settings.text_job_retry_budget_seconds)
        spec = QueueSpec(settings.text_job_queue, (TEXT_JOB_REQUESTED,), prefetch=settings.text_job_concurrency,
                         retry=retry, on_give_up=handler.give_up)
        await app.state.amqp.consume(spec, handler)
