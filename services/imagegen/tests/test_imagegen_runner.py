"""The job runner with the real tiny pipeline and a real blob directory: images, progress,
redelivery, cancel, out-of-memory, shutdown; and the AMQP handler's refusals."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from PIL import Image

from genai.events.v1 import events_pb2
from genai_common.amqp import PermanentFailure
from genai_common.blobs import FileBlobStore
from imagegen.consumer import ImageJobHandler
from imagegen.domain import ImageJob, JobState, JobUpdate, Limits, OutOfMemory, WorkerStopping
from imagegen.runner import ImageJobRunner


class RecordingSink:
    def __init__(self) -> None:
        self.updates: list[JobUpdate] = []

    async def report(self, update: JobUpdate) -> None:
        self.updates.append(update)

    def of(self, job_id: str) -> list[JobUpdate]:
        return [u for u in self.updates if u.job_id == job_id]


class CountingRenderer:
    """The real renderer, counting images and letting a test act at a given step."""

    def __init__(self, inner, on_step=None) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.rendered, self.on_step = inner, [], on_step

    def render(self, job, index, hook):  # type: ignore[no-untyped-def]
        def wrapped(step: int) -> None:
            if self.on_step:
                self.on_step(job, index, step)
            hook(step)

        png = self.inner.render(job, index, wrapped)
        self.rendered.append(index)
        return png


def job(job_id: str = "job-a", **changes) -> ImageJob:
    values = {"job_id": job_id, "prompt": "a lighthouse", "negative_prompt": "blurry", "n": 3, "width": 64,
              "height": 64, "steps": 2, "guidance": 5.0, "seed": 3}
    return ImageJob(**{**values, **changes})


def pngs(root: Path, job_id: str) -> list[tuple[str, tuple[int, int]]]:
    stored = sorted((root / "images" / job_id).glob("*.png"))
    return [(p.name, Image.open(io.BytesIO(p.read_bytes())).size) for p in stored]


@pytest.fixture
def parts(tmp_path, tiny_renderer):
    sink = RecordingSink()
    renderer = CountingRenderer(tiny_renderer)
    runner = ImageJobRunner(renderer, FileBlobStore(tmp_path), sink, progress_interval=0.0, progress_min_delta=1)
    return runner, renderer, sink, tmp_path


async def test_a_job_stores_n_pngs_and_reports_monotonic_progress_ending_at_100(parts) -> None:
    runner, renderer, sink, root = parts
    assert await runner.run(job(steps=4)) == JobState.SUCCEEDED
    assert pngs(root, "job-a") == [("0.png", (64, 64)), ("1.png", (64, 64)), ("2.png", (64, 64))]
    updates = sink.of("job-a")
    assert [u.state for u in updates[:-1]] == [JobState.RUNNING] * (len(updates) - 1)
    progress = [u.progress for u in updates]
    assert progress == sorted(progress) and progress[-1] == 100 and max(progress[:-1]) <= 99
    assert len(progress) >= 5  # throttle at 0 s / 1 point: about one update per step
    assert updates[-1].result_keys == ("images/job-a/0.png", "images/job-a/1.png", "images/job-a/2.png")


async def test_a_redelivered_job_renders_only_the_missing_images(parts) -> None:
    runner, renderer, sink, root = parts
    first = job()
    (root / "images" / "job-a").mkdir(parents=True)
    solo = CountingRenderer(renderer.inner)
    (root / first.image_key(1)).write_bytes(solo.inner.render(first, 1, lambda _s: None))
    assert await runner.run(first) == JobState.SUCCEEDED
    assert renderer.rendered == [0, 2] and len(pngs(root, "job-a")) == 3
    assert sink.of("job-a")[0].progress == 33  # it starts from what was stored
    again = RecordingSink()
    rerun = ImageJobRunner(renderer, FileBlobStore(root), again)
    assert await rerun.run(first) == JobState.SUCCEEDED and renderer.rendered == [0, 2]  # nothing left to do
    assert again.updates[-1].result_keys == sink.updates[-1].result_keys


async def test_cancel_stops_a_running_job_at_the_next_step_and_removes_its_images(parts) -> None:
    runner, renderer, sink, root = parts
    renderer.on_step = lambda job, index, step: runner.cancel(job.job_id) if (index, step) == (1, 1) else None
    assert await runner.run(job(steps=20)) == JobState.CANCELLED
    assert renderer.rendered == [0] and pngs(root, "job-a") == []
    assert sink.updates[-1].state == JobState.CANCELLED


async def test_a_job_cancelled_before_it_arrives_is_skipped(parts) -> None:
    runner, renderer, sink, _root = parts
    runner.cancel("job-b")
    assert await runner.run(job("job-b")) == JobState.CANCELLED
    assert renderer.rendered == [] and [u.state for u in sink.updates] == [JobState.CANCELLED]


async def test_out_of_memory_fails_the_job_and_the_worker_keeps_serving(parts) -> None:
    runner, renderer, sink, root = parts

    def oom(job, index, step):  # type: ignore[no-untyped-def]
        if job.job_id == "big":
            raise OutOfMemory("out of accelerator memory rendering 1024x1024; try a smaller size")

    renderer.on_step = oom
    assert await runner.run(job("big")) == JobState.FAILED
    assert sink.of("big")[-1].state == JobState.FAILED and "out of accelerator memory" in sink.of("big")[-1].reason
    assert await runner.run(job("next", n=1)) == JobState.SUCCEEDED
    assert len(pngs(root, "next")) == 1


async def test_stop_now_interrupts_the_render_for_a_requeue(parts) -> None:
    runner, renderer, sink, root = parts
    renderer.on_step = lambda job, index, step: runner.stop_now() if (index, step) == (0, 2) else None
    with pytest.raises(WorkerStopping):
        await runner.run(job(steps=50))
    assert renderer.rendered == [] and sink.updates[-1].state == JobState.RUNNING  # no outcome: requeued


async def test_renders_run_one_at_a_time(parts) -> None:
    _runner, renderer, sink, root = parts
    active, peak = [0], [0]
    inner = renderer.inner

    class Gate:
        def render(self, job, index, hook):  # type: ignore[no-untyped-def]
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            try:
                return inner.render(job, index, hook)
            finally:
                active[0] -= 1

    runner = ImageJobRunner(Gate(), FileBlobStore(root), sink)
    outcomes = await asyncio.gather(*(runner.run(job(f"c{i}", n=1)) for i in range(3)))
    assert outcomes == [JobState.SUCCEEDED] * 3 and peak[0] == 1


class FakeMessage:
    def __init__(self, event, headers: dict | None = None) -> None:  # type: ignore[no-untyped-def]
        self.body = event.SerializeToString()
        self.type = event.DESCRIPTOR.full_name
        self.headers = headers or {}
        self.message_id = None


def request(**changes) -> events_pb2.ImageJobRequested:
    values = {"job_id": "job-h", "prompt": "a fox", "n": 1, "width": 64, "height": 64, "steps": 1, "guidance": 5.0,
              "seed": 1}
    return events_pb2.ImageJobRequested(**{**values, **changes})


@pytest.mark.parametrize(("changes", "why"), [
    ({"n": 0}, "n must be"), ({"n": 9}, "n must be"), ({"width": 65}, "width"), ({"steps": 0}, "steps"),
    ({"prompt": " "}, "prompt"), ({"height": 4096}, "height"),
])
async def test_an_invalid_job_is_refused_for_good_and_reported_failed(parts, changes, why) -> None:
    runner, renderer, sink, _root = parts
    handler = ImageJobHandler(runner, sink, Limits(max_images=8, max_steps=50, max_side=1024))
    message = FakeMessage(request(**changes))
    with pytest.raises(PermanentFailure, match=why):
        await handler(message)
    assert renderer.rendered == []
    await handler.give_up(message, "invalid job: " + why)  # what the queue's consumer does next
    assert [u.state for u in sink.updates] == [JobState.FAILED] and why in sink.updates[0].reason


async def test_giving_up_reports_the_job_failed_even_when_its_body_is_unreadable(parts) -> None:
    runner, _renderer, sink, _root = parts
    handler = ImageJobHandler(runner, sink, Limits(8, 50, 1024))
    unreadable = FakeMessage(request(job_id="job-x"), headers={"job_id": "job-x"})
    unreadable.body = b"\xff\xff not protobuf"
    await handler.give_up(unreadable, "gave up after 5 attempts: blob store unavailable")
    assert sink.of("job-x")[-1].state == JobState.FAILED and "5 attempts" in sink.of("job-x")[-1].reason
