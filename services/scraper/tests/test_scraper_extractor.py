"""The extraction pool front: batching under load, dropped work for abandoned pages."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import psutil
import pytest

from scraper.extract import Extracted, extract_batch
from scraper.extractor import ExtractionFailed, PoolExtractor, process_pool


class FakeWorkers(ThreadPoolExecutor):
    """Threads standing in for worker processes; records every batch and can hold them."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        pages = args[0]
        self.batches.append([url for _, url, _, _ in pages])

        def held() -> Any:
            self.gate.wait(10)
            return fn(*args, **kwargs)

        return super().submit(held)


def html(n: int) -> bytes:
    return f"<html><head><title>Page {n}</title></head><body><p>Body of page {n}.</p></body></html>".encode()


async def test_a_burst_goes_to_the_pool_in_a_few_batches_and_every_page_gets_its_own_result():
    workers = FakeWorkers(2)
    extractor = PoolExtractor(workers, workers=2, max_batch=16)
    workers.gate.clear()  # hold the first batches so the burst queues up behind them

    jobs = [asyncio.ensure_future(extractor.extract(html(n), f"http://x.example/{n}", "text/html", None))
            for n in range(50)]
    await asyncio.sleep(0)
    workers.gate.set()
    results = await asyncio.gather(*jobs)

    assert [r.title for r in results] == [f"Page {n}" for n in range(50)]
    assert len(workers.batches) <= 6  # 2 singles, then full batches of up to 16
    assert sorted(u for b in workers.batches for u in b) == sorted(f"http://x.example/{n}" for n in range(50))
    workers.shutdown()


async def one_busy_worker(**options: Any) -> tuple[FakeWorkers, PoolExtractor, asyncio.Future[Extracted]]:
    """An extractor with one worker, busy with page 1 (held at the gate): later pages queue up."""
    workers = FakeWorkers(1)
    extractor = PoolExtractor(workers, workers=1, **options)
    workers.gate.clear()
    first = asyncio.ensure_future(extractor.extract(html(1), "http://x.example/1", "text/html", None))
    await asyncio.sleep(0)
    return workers, extractor, first


async def test_pages_whose_caller_gave_up_are_never_sent():
    workers, extractor, first = await one_busy_worker()
    abandoned = asyncio.ensure_future(extractor.extract(html(2), "http://x.example/2", "text/html", None))
    kept = asyncio.ensure_future(extractor.extract(html(3), "http://x.example/3", "text/html", None))
    await asyncio.sleep(0)
    abandoned.cancel()
    workers.gate.set()

    assert (await first).title == "Page 1" and (await kept).title == "Page 3"
    assert workers.batches == [["http://x.example/1"], ["http://x.example/3"]]
    workers.shutdown()


async def test_a_page_that_breaks_the_extractor_fails_alone():
    workers, extractor, first = await one_busy_worker()
    broken = asyncio.ensure_future(extractor.extract(None, "http://x.example/bad", "text/plain", None))  # type: ignore[arg-type]
    fine = asyncio.ensure_future(extractor.extract(html(2), "http://x.example/2", "text/html", None))
    await asyncio.sleep(0)
    workers.gate.set()

    assert (await first).title == "Page 1"
    with pytest.raises(ExtractionFailed):
        await broken
    assert (await fine).title == "Page 2"
    assert len(workers.batches) == 2  # the broken page shared a batch with a good one
    workers.shutdown()


def test_extract_batch_reports_errors_per_page():
    good, bad = extract_batch([(html(1), "http://x.example/1", "text/html", None), (None, "u", "text/plain", None)])  # type: ignore[list-item]
    assert good.title == "Page 1"  # type: ignore[union-attr]
    assert isinstance(bad, str) and "extraction failed" in bad


async def test_a_batch_dropped_by_a_pool_shutdown_fails_its_pages_instead_of_hanging():
    workers = FakeWorkers(1)
    workers.gate.clear()
    workers.submit(extract_batch, [(html(0), "http://x.example/0", "text/html", None)])  # holds the only thread
    extractor = PoolExtractor(workers, workers=1)
    page = asyncio.ensure_future(extractor.extract(html(1), "http://x.example/1", "text/html", None))
    await asyncio.sleep(0)  # its batch waits in the pool's queue

    workers.shutdown(wait=False, cancel_futures=True)  # cancels the queued batch
    workers.gate.set()

    async with asyncio.timeout(10):
        with pytest.raises(ExtractionFailed):
            await page


class CrashingWorkers(FakeWorkers):
    """Like a process pool whose worker was killed: the batch running fails, the pool stays broken."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self.broken:
            raise BrokenProcessPool("a child process terminated abruptly")
        self.broken = True
        self.batches.append([url for _, url, _, _ in args[0]])
        crashed: Future[Any] = Future()
        crashed.set_exception(BrokenProcessPool("a child process terminated abruptly"))
        return crashed

    broken = False


async def test_a_crashed_worker_fails_only_its_batch_and_a_fresh_pool_takes_over():
    crashing, fresh = CrashingWorkers(1), FakeWorkers(1)
    extractor = PoolExtractor(crashing, workers=1, renew=lambda: fresh)

    with pytest.raises(ExtractionFailed):
        await extractor.extract(html(1), "http://x.example/1", "text/html", None)
    later = await extractor.extract(html(2), "http://x.example/2", "text/html", None)

    assert later.title == "Page 2"
    assert crashing.batches == [["http://x.example/1"]] and fresh.batches == [["http://x.example/2"]]
    await extractor.aclose()
    crashing.shutdown()


async def test_a_killed_extraction_process_is_replaced():
    def spawned_workers() -> set[int]:
        return {p.pid for p in psutil.Process().children(recursive=True) if "spawn_main" in " ".join(p.cmdline())}

    before = spawned_workers()
    pools: list[Any] = [process_pool(1)]
    extractor = PoolExtractor(pools[0], workers=1, renew=lambda: pools.append(process_pool(1)) or pools[-1])
    try:
        await extractor.warm()
        for pid in spawned_workers() - before:
            psutil.Process(pid).kill()
        with pytest.raises(BrokenProcessPool):  # the original pool is now unusable for good
            await asyncio.wrap_future(pools[0].submit(extract_batch, []))

        page = await extractor.extract(html(3), "http://x.example/3", "text/html", None)

        assert page.title == "Page 3"
        assert len(pools) == 2
    finally:
        await extractor.aclose()


async def test_a_page_that_takes_too_long_fails_alone_and_frees_its_worker():
    # Link-heavy markup costs the extractor far more than its size suggests (this one: seconds).
    slow = b"<html><body>" + b"<a href='/x'>link text</a> " * 70_000 + b"</body></html>"
    extractor = PoolExtractor(process_pool(1, page_seconds=0.3), workers=1)
    try:
        with pytest.raises(ExtractionFailed, match="longer than 0.3s"):
            await extractor.extract(slow, "http://x.example/slow", "text/html", None)
        page = await extractor.extract(html(4), "http://x.example/4", "text/html", None)  # the same worker
        assert page.title == "Page 4"
    finally:
        await extractor.aclose()
