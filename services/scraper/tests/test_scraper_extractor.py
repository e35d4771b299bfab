"""The extraction pool front: batching under load, dropped work for abandoned pages."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from scraper.extract import extract_batch
from scraper.extractor import ExtractionFailed, PoolExtractor


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


async def test_pages_whose_caller_gave_up_are_never_sent():
    workers = FakeWorkers(1)
    extractor = PoolExtractor(workers, workers=1)
    workers.gate.clear()
    first = asyncio.ensure_future(extractor.extract(html(1), "http://x.example/1", "text/html", None))
    await asyncio.sleep(0)
    abandoned = asyncio.ensure_future(extractor.extract(html(2), "http://x.example/2", "text/html", None))
    kept = asyncio.ensure_future(extractor.extract(html(3), "http://x.example/3", "text/html", None))
    await asyncio.sleep(0)
    abandoned.cancel()
    workers.gate.set()

    assert (await first).title == "Page 1" and (await kept).title == "Page 3"
    assert workers.batches == [["http://x.example/1"], ["http://x.example/3"]]
    workers.shutdown()


async def test_a_page_that_breaks_the_extractor_fails_alone():
    workers = FakeWorkers(1)
    extractor = PoolExtractor(workers, workers=1)
    workers.gate.clear()
    first = asyncio.ensure_future(extractor.extract(html(1), "http://x.example/1", "text/html", None))
    await asyncio.sleep(0)
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
