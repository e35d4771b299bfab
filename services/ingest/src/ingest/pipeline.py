"""One uploaded document → indexed chunks: read blob → extract → clean → chunk → index → report.

Domain code: collaborators come in as Protocols (blob store, extractor, indexer, progress sink).
Terminal document problems (encrypted, malformed, no text, timed out) end in `failed` with the
reason; infrastructure errors (retriever or blob store unavailable) propagate, so the message is
retried and the consumer decides when to give up.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from genai_common.errors import InvalidInput, NotFound
from ingest.budget import ByteBudget
from ingest.chunking import Chunk, ChunkingPolicy, ChunkingTimedOut, chunk_pages
from ingest.clean import clean_text
from ingest.domain import IngestJob, Outcome, Report
from ingest.extract import NO_TEXT, Extracted, ExtractionFailed, PageProgress

log = logging.getLogger(__name__)

_UNBOUNDED = 1 << 62

# Progress (0-100) at the start of each stage; embedding fills the rest batch by batch.
PARSING_AT, CHUNKING_AT, EMBEDDING_AT = 5, 20, 25


class Blobs(Protocol):
    async def get(self, key: str) -> bytes: ...


class TextExtractor(Protocol):
    async def extract(self, data: bytes, media_type: str, on_page: PageProgress | None = None) -> Extracted: ...


class Indexer(Protocol):
    async def index(self, document_id: str, source_name: str, chunks: Sequence[Chunk],
                    tenant: str = "default") -> int: ...
    async def delete_document(self, document_id: str) -> int: ...


class ProgressSink(Protocol):
    async def processing(self, document_id: str, stage: str, progress: int,
                         stage_seconds: Mapping[str, float]) -> None: ...
    async def succeeded(self, document_id: str, pages: int, chunks: int,
                        stage_seconds: Mapping[str, float]) -> None: ...
    async def failed(self, document_id: str, reason: str, stage_seconds: Mapping[str, float]) -> None: ...


class IngestPipeline:
    def __init__(self, blobs: Blobs, extractor: TextExtractor, indexer: Indexer, progress: ProgressSink, *,
                 policy: ChunkingPolicy, batch_chunks: int = 64, chunk_timeout_seconds: float = 60.0,
                 budget: ByteBudget | None = None) -> None:
        self._blobs, self._extractor, self._indexer = blobs, extractor, indexer
        self._progress = progress
        self._budget = budget or ByteBudget(_UNBOUNDED)
        self._policy = policy
        self._batch = batch_chunks
        self._chunk_timeout = chunk_timeout_seconds

    async def process(self, job: IngestJob) -> Report:
        """Index `job`'s document and report it; returns what happened (errors = retry).

        The document holds its size in the worker's byte budget from before it is read until it is
        done (its bytes, text and chunks are in memory that long)."""
        async with self._budget.hold(job.size_bytes):
            return await self._process_held(job)

    async def _process_held(self, job: IngestJob) -> Report:
        timings: dict[str, float] = {}
        try:
            return await self._process(job, timings)
        except _BlobGone:
            # The document was deleted before (or while) it was processed: make sure no
            # vectors outlive it, and let the message go.
            await self._indexer.delete_document(job.document_id)
            return Report(Outcome.DELETED)
        except ExtractionFailed as exc:
            await self._progress.failed(job.document_id, exc.reason, timings)
            return Report(Outcome.FAILED, reason=exc.reason, stage_seconds=timings)

    async def _read(self, job: IngestJob) -> bytes:
        try:
            return await self._blobs.get(job.blob_key)
        except NotFound as exc:
            raise _BlobGone from exc

    async def _process(self, job: IngestJob, timings: dict[str, float]) -> Report:
        data = await self._read(job)
        if job.sha256 and await asyncio.to_thread(_sha256, data) != job.sha256:
            raise ExtractionFailed("the stored file does not match its checksum; upload it again")
        await self._progress.processing(job.document_id, "parsing", PARSING_AT, timings)
        with _timed(timings, "parsing"):
            extracted = await self._extractor.extract(data, job.media_type, self._page_progress(job))
        del data  # the only reference: the file is not held while it is embedded
        await self._progress.processing(job.document_id, "chunking", CHUNKING_AT, timings)
        with _timed(timings, "chunking"):
            chunks = await asyncio.to_thread(_chunk, extracted, self._policy, self._chunk_timeout)
        if not chunks:
            raise ExtractionFailed(NO_TEXT)
        await self._progress.processing(job.document_id, "embedding", EMBEDDING_AT, timings)
        with _timed(timings, "embedding"):
            try:
                await self._index(job, chunks)
            except InvalidInput as exc:  # retrying cannot change the retriever's mind
                raise ExtractionFailed(f"the retriever refused the document: {exc.message}") from exc
        await self._progress.succeeded(job.document_id, extracted.page_count, len(chunks), timings)
        return Report(Outcome.INDEXED, pages=extracted.page_count, chunks=len(chunks), stage_seconds=timings)

    def _page_progress(self, job: IngestJob) -> PageProgress:
        last = [PARSING_AT]

        async def on_page(done: int, total: int) -> None:
            pct = PARSING_AT + (CHUNKING_AT - PARSING_AT) * done // max(total, 1)
            if pct > last[0]:
                last[0] = pct
                await self._progress.processing(job.document_id, "parsing", pct, {})

        return on_page

    async def _index(self, job: IngestJob, chunks: list[Chunk]) -> None:
        for start in range(0, len(chunks), self._batch):
            batch = chunks[start:start + self._batch]
            await self._indexer.index(job.document_id, job.filename, batch, job.tenant)
            done = start + len(batch)
            if done < len(chunks):
                pct = EMBEDDING_AT + (100 - EMBEDDING_AT) * done // len(chunks)
                await self._progress.processing(job.document_id, "embedding", min(pct, 99), {})


class _BlobGone(Exception):
    """The upload's blob is gone: the document was deleted."""


class _timed:
    def __init__(self, timings: dict[str, float], stage: str) -> None:
        self._timings, self._stage = timings, stage

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._timings[self._stage] = round(time.perf_counter() - self._started, 4)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _chunk(extracted: Extracted, policy: ChunkingPolicy, timeout_seconds: float) -> list[Chunk]:
    """Clean and chunk (linear in the text), given up past `timeout_seconds`: the document fails."""
    deadline = time.monotonic() + timeout_seconds
    pages = [(number, clean_text(text)) for number, text in extracted.pages]
    try:
        return chunk_pages([(n, t) for n, t in pages if t], policy, deadline)
    except ChunkingTimedOut:
        raise ExtractionFailed(f"timed out: splitting the text into chunks took longer than "
                               f"{timeout_seconds:g} s") from None
