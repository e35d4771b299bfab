"""PDF text extraction in a sandboxed child process: every file ends in pages or a reason."""

from __future__ import annotations

import asyncio
import os

import pytest
from ingest_pdfs import blank_pdf, encrypted_pdf, pdf_from_streams, slow_pdf, text_pdf

from ingest.extract import ExtractionFailed, Extractor, PdfLimits

PDF = "application/pdf"


@pytest.fixture
def extractor() -> Extractor:
    return Extractor(PdfLimits(wall_seconds=60, cpu_seconds=30), concurrency=2)


async def test_text_pdf_gives_numbered_pages_and_reports_progress(extractor: Extractor) -> None:
    seen: list[tuple[int, int]] = []

    async def on_page(done: int, total: int) -> None:
        seen.append((done, total))

    result = await extractor.extract(text_pdf(["Harbour opening hours.", "Tickets cost twelve euros."]), PDF, on_page)
    assert result.page_count == 2
    assert [n for n, _ in result.pages] == [1, 2]
    assert "Harbour opening hours." in result.pages[0][1] and "twelve euros" in result.pages[1][1]
    assert seen == [(1, 2), (2, 2)]


async def test_pdf_encrypted_with_a_password_fails_as_encrypted(extractor: Extractor) -> None:
    with pytest.raises(ExtractionFailed, match=r"^encrypted"):
        await extractor.extract(encrypted_pdf("Secret plans.", user_password="hunter2"), PDF)


async def test_pdf_with_only_an_owner_password_opens_with_the_empty_password(extractor: Extractor) -> None:
    result = await extractor.extract(encrypted_pdf("Readable by anyone.", user_password=""), PDF)
    assert "Readable by anyone." in result.pages[0][1]


@pytest.mark.parametrize("data", [b"%PDF-1.7\n" + os.urandom(4096), text_pdf(["Cut short."])[:150], b"%PDF-"])
async def test_malformed_pdf_fails_with_the_parsers_reason(extractor: Extractor, data: bytes) -> None:
    with pytest.raises(ExtractionFailed, match=r"^malformed PDF: \w+"):
        await extractor.extract(data, PDF)


async def test_blank_pages_give_pages_without_text(extractor: Extractor) -> None:
    result = await extractor.extract(blank_pdf(3), PDF)
    assert result.page_count == 3 and all(not text.strip() for _, text in result.pages)


async def test_a_parser_that_burns_cpu_is_killed_at_the_cpu_limit() -> None:
    extractor = Extractor(PdfLimits(wall_seconds=120, cpu_seconds=1))
    with pytest.raises(ExtractionFailed, match=r"^timed out"):
        await extractor.extract(slow_pdf(), PDF)


async def test_a_parser_that_hangs_is_killed_at_the_wall_clock_limit_and_the_loop_stays_free() -> None:
    extractor = Extractor(PdfLimits(wall_seconds=1, cpu_seconds=120))
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    beating = asyncio.create_task(heartbeat())
    with pytest.raises(ExtractionFailed, match=r"^timed out: parsing took longer than 1 s"):
        await extractor.extract(slow_pdf(), PDF)
    beating.cancel()
    assert ticks >= 5, "the event loop was blocked while the PDF was parsed"


async def test_too_many_pages_is_refused() -> None:
    extractor = Extractor(PdfLimits(max_pages=2))
    with pytest.raises(ExtractionFailed, match=r"^too many pages: 3"):
        await extractor.extract(blank_pdf(3), PDF)


async def test_a_decompression_bomb_ends_in_a_reason_not_a_dead_worker() -> None:
    # 300 MiB of text that deflates to a few hundred KiB.
    bomb = pdf_from_streams([b"BT /F1 10 Tf 40 800 Td (" + b"A" * (300 * 1024 * 1024) + b") Tj ET"], compress=True)
    extractor = Extractor(PdfLimits(wall_seconds=60, cpu_seconds=30, memory_bytes=512 * 1024 * 1024))
    with pytest.raises(ExtractionFailed, match=r"^(malformed PDF|too large)"):
        await extractor.extract(bomb, PDF)
    # The next document is handled normally.
    assert (await extractor.extract(text_pdf(["Still alive."]), PDF)).page_count == 1


async def test_text_and_markdown_are_decoded_without_a_child_process(extractor: Extractor) -> None:
    result = await extractor.extract("\ufeffPlain text, ünïcode.".encode(), "text/plain")
    assert result.pages == [(0, "Plain text, ünïcode.")] and result.page_count == 0
