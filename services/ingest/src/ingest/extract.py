"""Text out of an upload: PDFs in a sandboxed child process, text and Markdown by decoding.

A fresh `python -m ingest.pdf_worker` per PDF (CPU-time and address-space limits set inside
it, a wall-clock timeout here), at most `concurrency` at a time. Whatever the file does, the
worker's event loop only awaits pipes; the worst a file can do is get its child killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

PDF = "application/pdf"
TEXT_TYPES = frozenset({"text/plain", "text/markdown"})
NO_TEXT = "no extractable text (scanned or image-only?)"
_MAX_LINE = 64 * 1024 * 1024

PageProgress = Callable[[int, int], Awaitable[None]]


class ExtractionFailed(Exception):
    """The document itself cannot be read (a terminal outcome, not a retryable error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PdfLimits:
    wall_seconds: float = 120.0
    cpu_seconds: int = 90
    memory_bytes: int = 1024 * 1024 * 1024
    max_pages: int = 5000
    # Text a single document may yield, in characters (bounds the parent's memory too).
    max_chars: int = 20_000_000


@dataclass(frozen=True)
class Extracted:
    # (1-based page number, text); page 0 for sources without pages.
    pages: list[tuple[int, str]]
    page_count: int


class Extractor:
    def __init__(self, limits: PdfLimits, concurrency: int = 2) -> None:
        self._limits = limits
        self._slots = asyncio.Semaphore(concurrency)

    async def extract(self, data: bytes, media_type: str, on_page: PageProgress | None = None) -> Extracted:
        if media_type in TEXT_TYPES:
            return await asyncio.to_thread(_decode_text, data)
        if media_type != PDF:
            raise ExtractionFailed(f"unsupported media type {media_type!r}")
        async with self._slots:
            return await self._extract_pdf(data, on_page)

    async def _extract_pdf(self, data: bytes, on_page: PageProgress | None) -> Extracted:
        limits = self._limits
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ingest.pdf_worker", "--cpu-seconds", str(limits.cpu_seconds),
            "--memory-bytes", str(limits.memory_bytes), "--max-pages", str(limits.max_pages),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            limit=_MAX_LINE, start_new_session=True,
        )
        try:
            async with asyncio.timeout(limits.wall_seconds):
                return await _converse(process, data, limits.max_chars, on_page)
        except TimeoutError:
            raise ExtractionFailed(f"timed out: parsing took longer than {limits.wall_seconds:.0f} s") from None
        finally:
            await _reap(process)


async def _converse(process: asyncio.subprocess.Process, data: bytes, max_chars: int,
                    on_page: PageProgress | None) -> Extracted:
    assert process.stdin is not None and process.stdout is not None
    feeder = asyncio.create_task(_feed(process.stdin, data))
    pages: list[tuple[int, str]] = []
    total, chars, error = 0, 0, None
    try:
        while line := await process.stdout.readline():
            record = json.loads(line)
            if "error" in record:
                error = str(record.get("reason") or record["error"])
            elif "pages" in record:
                total = int(record["pages"])
            elif "page" in record:
                text = str(record.get("text", ""))
                chars += len(text)
                if chars > max_chars:
                    raise ExtractionFailed(f"too large: more than {max_chars} characters of text")
                pages.append((int(record["page"]), text))
                if on_page is not None:
                    await on_page(len(pages), total)
    except (ValueError, asyncio.LimitOverrunError) as exc:
        raise ExtractionFailed(f"parser produced unreadable output ({type(exc).__name__})") from exc
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await feeder
    code = await process.wait()
    if error is not None:
        raise ExtractionFailed(error)
    if code != 0:
        raise ExtractionFailed(_crash_reason(code))
    return Extracted(pages, total)


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    try:
        stdin.write(data)
        await stdin.drain()
    except ConnectionError:
        pass  # the child stopped reading (it failed early); its output says why
    finally:
        stdin.close()


def _crash_reason(code: int) -> str:
    if code in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timed out: the parser used up its CPU-time limit"
    if code < 0:
        return f"parser crashed (signal {signal.Signals(-code).name})"
    return f"parser crashed (exit status {code})"


async def _reap(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await process.wait()


def _decode_text(data: bytes) -> Extracted:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExtractionFailed(f"not valid UTF-8 text (byte {exc.start})") from exc
    return Extracted([(0, text)], 0)
