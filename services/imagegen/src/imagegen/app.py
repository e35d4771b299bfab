"""Composition root of the image worker: load and warm the pipeline, then consume until SIGTERM.

Order at start: ops endpoint (healthz; readyz says not ready) -> pipeline loaded and warmed up
-> broker connected -> cancel fan-out queue -> job queue (prefetch 1) -> ready (while the broker
connection is up).
Order at SIGTERM: not ready -> stop taking jobs -> the job in flight finishes within the grace
period (or stops at its next step and is requeued) -> broker closed -> exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import AsyncExitStack

from genai_common.amqp import IMAGE_JOB_REQUESTED, JOB_CANCEL_REQUESTED, Amqp, GiveUp, QueueSpec, RetryPolicy
from genai_common.blobs import open_blob_store
from genai_common.lifecycle import shutdown_event
from genai_common.loop_lag import LoopLagProbe
from genai_common.metrics import record_build_info
from genai_common.ops_server import OpsServer
from imagegen import metrics
from imagegen.consumer import AmqpProgressSink, CancelHandler, ImageJobHandler
from imagegen.domain import Limits
from imagegen.renderer import Renderer, build_pipeline, configure_threads, resolve_device, resolve_dtype
from imagegen.runner import ImageJobRunner
from imagegen.settings import ImagegenSettings

log = logging.getLogger(__name__)


def queue_spec(settings: ImagegenSettings, on_give_up: GiveUp | None = None) -> QueueSpec:
    retry = RetryPolicy(attempts=settings.imagegen_retry_attempts,
                        budget_seconds=settings.imagegen_retry_budget_seconds)
    return QueueSpec(settings.imagegen_queue, (IMAGE_JOB_REQUESTED,), prefetch=1, retry=retry, on_give_up=on_give_up,
                     max_length=settings.imagegen_queue_max_length)


async def load_renderer(settings: ImagegenSettings) -> Renderer:
    configure_threads(settings.imagegen_cpu_threads)
    device = resolve_device(settings.imagegen_device)
    dtype = resolve_dtype(settings.imagegen_dtype, device)
    log.info("loading pipeline", extra={"model": settings.imagegen_model, "device": device, "dtype": str(dtype)})
    pipe = await asyncio.to_thread(build_pipeline, settings.imagegen_model, device, dtype, settings.imagegen_variant)
    renderer = Renderer(pipe)
    await asyncio.to_thread(renderer.warm_up)
    log.info("pipeline warmed up", extra={"device": device})
    return renderer


async def start_consuming(amqp: Amqp, runner: ImageJobRunner, settings: ImagegenSettings) -> None:
    limits = Limits(settings.imagegen_max_images, settings.imagegen_max_steps, settings.imagegen_max_side)
    await amqp.consume_broadcast(f"imagegen.cancel.{uuid.uuid4().hex[:12]}", (JOB_CANCEL_REQUESTED,),
                                 CancelHandler(runner))
    handler = ImageJobHandler(runner, AmqpProgressSink(amqp), limits)
    await amqp.consume(queue_spec(settings, handler.give_up), handler)


async def run(settings: ImagegenSettings) -> None:
    stop = shutdown_event()
    record_build_info("imagegen")
    consuming = False
    # Connected once the pipeline is ready.
    amqp = Amqp(settings.amqp_url, name="imagegen", publish_timeout=settings.amqp_publish_timeout_seconds)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(LoopLagProbe(metrics.LOOP_LAG_SECONDS))
        await stack.enter_async_context(OpsServer(settings.imagegen_metrics_host, settings.imagegen_metrics_port,
                                                  ready=lambda: consuming and amqp.is_connected))
        renderer = await load_renderer(settings)
        if stop.is_set():
            return
        await amqp.connect()
        stack.push_async_callback(amqp.close)
        runner = ImageJobRunner(
            renderer, open_blob_store(settings.blob_store_url), AmqpProgressSink(amqp),
            progress_interval=settings.imagegen_progress_interval_seconds,
            progress_min_delta=settings.imagegen_progress_min_delta,
        )
        await start_consuming(amqp, runner, settings)
        consuming = True
        log.info("imagegen ready", extra={"queue": settings.imagegen_queue})
        await stop.wait()
        consuming = False
        await _drain(amqp, runner, settings.shutdown_grace_seconds)
    log.info("imagegen stopped")


async def _drain(amqp: Amqp, runner: ImageJobRunner, grace: float) -> None:
    """Stop intake; give the job in flight `grace` seconds, then stop it at its next step (requeued)."""
    timer = asyncio.get_running_loop().call_later(grace, runner.stop_now)
    try:
        await amqp.stop_consumers(grace + 10)
    finally:
        timer.cancel()
