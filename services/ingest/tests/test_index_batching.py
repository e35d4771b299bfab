"""Documents in flight share IndexBatch calls; each still learns its own outcome. And the byte budget."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from genai_common.errors import InvalidInput, Unavailable
from ingest.batching import IndexBatcher, IndexPart
from ingest.budget import ByteBudget
from ingest.chunking import Chunk, ChunkingPolicy
from ingest.domain import IngestJob, Outcome
from ingest.extract import Extractor, PdfLimits
from ingest.pipeline import IngestPipeline
from tests.support.eventually import eventually


def chunks(count: int, text: str = "some text") -> list[Chunk]:
    return [Chunk(index=i, page=0, text=f"{text} {i}") for i in range(count)]


@dataclass
class FakeBatchRetriever:
    """IndexBatch as the retriever answers it; `gate` holds every call until set."""

    calls: list[list[str]] = field(default_factory=list)  # the document ids of each call
    indexed: dict[str, int] = field(default_factory=dict)
    refuse: set[str] = field(default_factory=set)
    fail_next: Exception | None = None
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    most_in_flight: int = 0
    short_answer: bool = False

    async def index_batch(self, parts: Sequence[IndexPart]) -> list[int | InvalidInput]:
        self.calls.append([p.document_id for p in parts])
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        if self.fail_next is not None:
            failure, self.fail_next = self.fail_next, None
            raise failure
        outcomes: list[int | InvalidInput] = []
        for part in parts:
            if part.document_id in self.refuse:
                outcomes.append(InvalidInput(f"retriever: {part.document_id} refused"))
            else:
                self.indexed[part.document_id] = self.indexed.get(part.document_id, 0) + len(part.chunks)
                outcomes.append(len(part.chunks))
        return outcomes[:-1] if self.short_answer else outcomes

    async def delete_document(self, document_id: str) -> int:
        return self.indexed.pop(document_id, 0)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_documents_arriving_together_share_one_call_and_each_gets_its_own_count() -> None:
    retriever = FakeBatchRetriever()
    retriever.gate.set()
    batcher = IndexBatcher(retriever, max_chunks=64)
    counts = await asyncio.gather(*(batcher.index(f"doc-{i}", "a.txt", chunks(1 + i % 3)) for i in range(12)))
    assert counts == [1 + i % 3 for i in range(12)]
    assert retriever.calls == [[f"doc-{i}" for i in range(12)]]


async def test_documents_wait_while_the_retriever_is_busy_then_go_together_within_the_chunk_limit() -> None:
    retriever = FakeBatchRetriever()
    batcher = IndexBatcher(retriever, max_chunks=10, max_calls=1)
    first = asyncio.create_task(batcher.index("first", "a.txt", chunks(2)))
    await settle()
    assert retriever.calls == [["first"]]  # a lone document is sent at once, no waiting on a timer
    later = [asyncio.create_task(batcher.index(f"doc-{i}", "a.txt", chunks(3))) for i in range(7)]
    await settle()
    assert len(retriever.calls) == 1  # one call at most: the others wait
    retriever.gate.set()
    assert await asyncio.gather(first, *later) == [2] + [3] * 7
    # 7 × 3 chunks, at most 10 per call: 3 + 3 + 3, then the last ones; oldest first.
    assert retriever.calls[1:] == [["doc-0", "doc-1", "doc-2"], ["doc-3", "doc-4", "doc-5"], ["doc-6"]]
    assert retriever.most_in_flight == 1


async def test_a_part_larger_than_the_limit_still_goes_alone() -> None:
    retriever = FakeBatchRetriever()
    retriever.gate.set()
    batcher = IndexBatcher(retriever, max_chunks=4)
    assert await asyncio.gather(batcher.index("big", "a.txt", chunks(9)), batcher.index("small", "b", chunks(1))) \
        == [9, 1]
    assert retriever.calls == [["big"], ["small"]]


async def test_at_most_max_calls_are_in_flight() -> None:
    retriever = FakeBatchRetriever()
    batcher = IndexBatcher(retriever, max_chunks=2, max_calls=2)
    tasks = [asyncio.create_task(batcher.index(f"doc-{i}", "a.txt", chunks(2))) for i in range(6)]
    await settle()
    assert retriever.in_flight == 2
    retriever.gate.set()
    assert await asyncio.gather(*tasks) == [2] * 6
    assert retriever.most_in_flight == 2 and len(retriever.calls) == 6


async def test_a_refused_document_fails_alone_and_the_others_in_its_call_are_indexed() -> None:
    retriever = FakeBatchRetriever(refuse={"bad"})
    retriever.gate.set()
    batcher = IndexBatcher(retriever, max_chunks=64)
    results = await asyncio.gather(*(batcher.index(name, "a.txt", chunks(2)) for name in ("a", "bad", "b")),
                                   return_exceptions=True)
    assert results[0] == 2 and results[2] == 2
    assert isinstance(results[1], InvalidInput) and "bad refused" in results[1].message
    assert retriever.indexed == {"a": 2, "b": 2} and len(retriever.calls) == 1


async def test_a_failed_call_fails_every_document_in_it_and_the_next_call_goes_out() -> None:
    retriever = FakeBatchRetriever(fail_next=Unavailable("retriever: unavailable"))
    retriever.gate.set()
    batcher = IndexBatcher(retriever, max_chunks=64)
    results = await asyncio.gather(*(batcher.index(name, "a.txt", chunks(1)) for name in ("a", "b")),
                                   return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results)
    assert retriever.indexed == {}
    assert await batcher.index("a", "a.txt", chunks(1)) == 1  # the message's retry goes through


async def test_an_answer_that_does_not_match_the_call_fails_its_documents_instead_of_hanging() -> None:
    retriever = FakeBatchRetriever(short_answer=True)
    retriever.gate.set()
    batcher = IndexBatcher(retriever, max_chunks=64)
    both = asyncio.gather(batcher.index("a", "x", chunks(1)), batcher.index("b", "x", chunks(1)),
                          return_exceptions=True)
    results = await asyncio.wait_for(both, timeout=5)
    assert all(isinstance(r, Unavailable) for r in results)


async def test_a_caller_that_leaves_before_its_turn_is_not_sent() -> None:
    retriever = FakeBatchRetriever()
    batcher = IndexBatcher(retriever, max_chunks=64, max_calls=1)
    first = asyncio.create_task(batcher.index("first", "a.txt", chunks(1)))
    await settle()
    left = asyncio.create_task(batcher.index("left", "a.txt", chunks(1)))
    stays = asyncio.create_task(batcher.index("stays", "a.txt", chunks(1)))
    await settle()
    left.cancel()
    retriever.gate.set()
    assert await asyncio.gather(first, stays) == [1, 1]
    assert retriever.calls == [["first"], ["stays"]]
    assert "left" not in retriever.indexed


async def held_at_once(budget: ByteBudget, sizes: list[int]) -> tuple[int, list[int]]:
    """Run one holder per size (each holds for a few loop turns): the most bytes held at once, and
    the order they got their grant in."""
    held, most, order = 0, 0, []

    async def hold(position: int, size: int) -> None:
        nonlocal held, most
        async with budget.hold(size):
            order.append(position)
            held += min(size, 100)
            most = max(most, held)
            await settle()
            held -= min(size, 100)

    await asyncio.gather(*(hold(i, size) for i, size in enumerate(sizes)))
    return most, order


async def test_the_byte_budget_bounds_what_is_held_and_serves_first_come_first() -> None:
    budget = ByteBudget(100)
    most, order = await held_at_once(budget, [40, 40, 90, 10, 10])
    assert most <= 100
    # 90 does not fit beside 40 + 40; the two 10s that would fit wait behind it (no starving).
    assert order == [0, 1, 2, 3, 4]
    assert budget.free == 100


async def test_a_document_larger_than_the_budget_runs_alone() -> None:
    budget = ByteBudget(100)
    most, order = await held_at_once(budget, [10, 500, 10])
    assert order == [0, 1, 2] and most <= 100
    assert budget.free == 100


async def test_a_waiter_that_leaves_gives_its_place_to_the_next() -> None:
    budget = ByteBudget(100)
    async with budget.hold(60):
        big = asyncio.create_task(budget.hold(80).__aenter__())
        small_entered = asyncio.Event()

        async def small() -> None:
            async with budget.hold(30):
                small_entered.set()

        small_task = asyncio.create_task(small())
        await settle()
        assert not small_entered.is_set()  # behind the 80 that does not fit
        big.cancel()
        await asyncio.wait_for(small_entered.wait(), timeout=5)
        await small_task
    assert budget.free == 100


@pytest.mark.parametrize("bad", [0, -1])
def test_a_budget_needs_room(bad: int) -> None:
    with pytest.raises(ValueError):
        ByteBudget(bad)


@dataclass
class FakeBlobs:
    data: dict[str, bytes]
    reads: list[str] = field(default_factory=list)

    async def get(self, key: str) -> bytes:
        self.reads.append(key)
        return self.data[key]


class QuietProgress:
    async def processing(self, *_: object) -> None: ...
    async def succeeded(self, *_: object) -> None: ...
    async def failed(self, *_: object) -> None: ...


async def test_the_pipeline_reads_a_document_only_once_the_budget_has_room_for_it() -> None:
    texts = {f"blob-{i}": f"Document {i} is about tides and ferries. ".encode() * 2 for i in range(3)}
    blobs = FakeBlobs(texts)
    retriever = FakeBatchRetriever()
    pipeline = IngestPipeline(blobs, Extractor(PdfLimits()), IndexBatcher(retriever, max_chunks=64), QuietProgress(),
                              policy=ChunkingPolicy(target_chars=300, overlap_chars=60, max_chars=500),
                              budget=ByteBudget(100))
    jobs = [IngestJob(document_id=f"doc-{i}", blob_key=f"blob-{i}", filename="a.txt", media_type="text/plain",
                      size_bytes=size) for i, size in enumerate((60, 30, 60))]
    running = [asyncio.create_task(pipeline.process(job)) for job in jobs]
    await eventually(lambda: _settled(retriever), lambda calls: len(calls) == 1, within=10, what="a call")
    # 60 + 30 fit in 100 bytes; the third waits, unread, until they are indexed.
    assert sorted(blobs.reads) == ["blob-0", "blob-1"]
    retriever.gate.set()
    reports = await asyncio.gather(*running)
    assert [r.outcome for r in reports] == [Outcome.INDEXED] * 3
    assert blobs.reads[-1] == "blob-2"


async def _settled(retriever: FakeBatchRetriever) -> list[list[str]]:
    await settle()
    return retriever.calls
