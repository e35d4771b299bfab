"""Job records: forward-only state, monotonic progress, first-insert-wins idempotency (real SQLite)."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest

from gateway.db import migrate, open_engine, session_factory
from gateway.jobs.domain import Kind, NewJob
from gateway.jobs.prompt_filter import PromptFilter
from gateway.jobs.store import Idempotency, JobStore
from gateway.progress import JobState, ProgressReport
from genai_common.errors import Conflict, NotFound, ValidationFailed


@pytest.fixture
async def store(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/jobs.db"
    await migrate(url)
    engine = open_engine(url)
    yield JobStore(session_factory(engine))
    await engine.dispose()


def new_job(job_id: str = "job-1") -> NewJob:
    return NewJob(job_id, Kind.IMAGE, {"prompt": "p", "n": 1})


async def test_concurrent_progress_reports_leave_the_highest(store) -> None:
    await store.create([new_job()], None)
    values = list(range(0, 100, 3))
    random.Random(4).shuffle(values)
    await asyncio.gather(*(store.apply(ProgressReport("job-1", JobState.RUNNING, v)) for v in values))
    job = await store.get("job-1")
    assert (job.status, job.progress) == (JobState.RUNNING, max(values))


@pytest.mark.parametrize("final", [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED])
async def test_a_terminal_state_is_final(store, final) -> None:
    await store.create([new_job()], None)
    assert await store.apply(ProgressReport("job-1", final, 100 if final == JobState.SUCCEEDED else 0,
                                    reason="boom", result_keys=("images/job-1/0.png",)))
    for late in (ProgressReport("job-1", JobState.RUNNING, 99), ProgressReport("job-1", JobState.SUCCEEDED, 100),
                 ProgressReport("job-1", JobState.FAILED, reason="late"), ProgressReport("job-1", JobState.CANCELLED)):
        assert await store.apply(late) is None
    job = await store.get("job-1")
    assert job.status == final and job.finished_at is not None
    assert job.error == ("boom" if final == JobState.FAILED else "")


async def test_cancel_and_success_racing_end_in_exactly_one_of_them(store) -> None:
    for i in range(20):
        await store.create([new_job(f"race-{i}")], None)
    await store.apply(ProgressReport("race-0", JobState.RUNNING, 10))

    async def cancel(job_id: str):
        try:
            return await store.cancel(job_id)
        except Conflict:
            return None

    results = await asyncio.gather(*(
        coro for i in range(20)
        for coro in (cancel(f"race-{i}"), store.apply(ProgressReport(f"race-{i}", JobState.SUCCEEDED, 100)))))
    for i in range(20):
        job = await store.get(f"race-{i}")
        cancelled, succeeded = results[2 * i], results[2 * i + 1]
        if job.status == JobState.CANCELLED:
            assert cancelled is not None and cancelled[1] and succeeded is None
        else:
            assert job.status == JobState.SUCCEEDED and cancelled is None and succeeded == Kind.IMAGE


async def test_cancel_unknown_is_not_found_and_cancelled_again_is_unchanged(store) -> None:
    with pytest.raises(NotFound):
        await store.cancel("nope")
    await store.create([new_job()], None)
    assert (await store.cancel("job-1"))[1] is True
    job, changed = await store.cancel("job-1")
    assert job.status == JobState.CANCELLED and changed is False


async def test_idempotency_first_insert_wins(store) -> None:
    key = Idempotency("k", "hash-a")
    created = await asyncio.gather(*(store.create([new_job(f"try-{i}")], key) for i in range(6)))
    assert [flag for _, flag in created].count(True) == 1
    assert len({jobs[0].id for jobs, _ in created}) == 1
    with pytest.raises(ValidationFailed) as reused:
        await store.create([new_job("other")], Idempotency("k", "hash-b"))
    assert (reused.value.code, reused.value.param) == ("idempotency_key_reused", "Idempotency-Key")


class BrokenSessions:
    """A session factory whose transactions fail after a round trip (as a lost database would)."""

    def begin(self) -> BrokenSessions:
        return self

    async def __aenter__(self) -> None:
        await asyncio.sleep(0)
        raise ConnectionError("database gone")

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_concurrent_publish_marks_all_land_and_a_failed_write_reaches_every_caller(store) -> None:
    await store.create([new_job(f"job-{i}") for i in range(30)], None)
    await asyncio.gather(*(store.mark_published([f"job-{i}"]) for i in range(30)))  # written in a few batches
    assert await store.unpublished(timedelta(0), 100) == []  # none would be published again at start
    broken = JobStore(BrokenSessions())  # type: ignore[arg-type]  # a stand-in, not a real session factory
    outcomes = await asyncio.gather(*(broken.mark_published([f"job-{i}"]) for i in range(3)), return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [ConnectionError] * 3  # the 2nd and 3rd shared one write


@pytest.mark.parametrize(("text", "blocked"), [
    ("Forbidden", True), ("a FORBIDDEN thing", True), ("forbidden.", True), ("(forbidden)", True),
    ("forbiddenness", False), ("unforbidden", False), ("a bad phrase here", True), ("a bad  phrase", False),
    ("c++ code", True), ("c++", True), ("cc++", False), ("", False),
])
def test_prompt_filter_matches_whole_words_in_any_case(text, blocked) -> None:
    assert PromptFilter(["forbidden", "Bad Phrase", "c++", " "]).blocked(text) is blocked


def test_an_empty_prompt_filter_blocks_nothing() -> None:
    assert not PromptFilter([]).blocked("anything at all")
