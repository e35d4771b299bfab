"""`python -m ingest.pdf_worker`: extract a PDF's text page by page inside resource limits.

Runs in a child process of the ingest worker, one per document: the PDF arrives on stdin and
every page leaves as one JSON line on stdout, so a hostile file can only hurt this process.
The CPU-time and address-space limits are set before pypdf is imported; the parent adds a
wall-clock timeout and kills the process when it passes.

Output lines: {"pages": N}, then {"page": i, "text": "..."} per page (1-based), then
{"done": true} — or one {"error": "encrypted" | "malformed" | "too_large", "reason": "..."}.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import resource
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # pypdf itself is imported only once the limits are set
    from pypdf import PageObject, PdfReader

Record = Mapping[str, object]  # one output line


def _limit(cpu_seconds: int, memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 2))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _emit(out: TextIO, record: Record) -> None:
    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()


def _open(data: bytes) -> tuple[PdfReader | None, Record | None]:
    """A readable PdfReader, or an error record saying why not."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        encrypted = reader.is_encrypted
    except MemoryError:
        raise
    except Exception as exc:  # whatever the parser trips over, the file is malformed for us
        return None, {"error": "malformed", "reason": f"malformed PDF: {_short(exc)}"}
    if not encrypted:
        return reader, None
    try:
        # Many PDFs are encrypted with an empty user password (owner restrictions only).
        opened = bool(reader.decrypt(""))
    except MemoryError:
        raise
    except Exception as exc:
        return None, {"error": "encrypted", "reason": f"encrypted: the PDF cannot be decrypted ({_short(exc)})"}
    if not opened:
        return None, {"error": "encrypted", "reason": "encrypted: the PDF needs a password to open"}
    return reader, None


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def _text_boxes(page: PageObject) -> str:
    """Text of FreeText annotations: text boxes drawn on the page, not part of its content stream."""
    texts = []
    try:
        for annotation in page.get("/Annots") or []:
            annotation = annotation.get_object()
            if annotation.get("/Subtype") == "/FreeText" and annotation.get("/Contents"):
                texts.append(str(annotation["/Contents"]))
    except MemoryError:
        raise
    except Exception:  # broken annotations must not cost the page its text
        return ""
    return "\n".join(texts)


def extract(data: bytes, max_pages: int, out: TextIO) -> int:
    reader, error = _open(data)
    if error is not None:
        _emit(out, error)
        return 0
    assert reader is not None
    try:
        count = len(reader.pages)
    except Exception as exc:  # any parser error while walking the page tree means "malformed"
        _emit(out, {"error": "malformed", "reason": f"malformed PDF: {_short(exc)}"})
        return 0
    if count == 0:
        _emit(out, {"error": "malformed", "reason": "malformed PDF: no pages"})
        return 0
    if count > max_pages:
        _emit(out, {"error": "too_large", "reason": f"too many pages: {count} (the limit is {max_pages})"})
        return 0
    _emit(out, {"pages": count})
    failed, first_error = 0, ""
    for number in range(count):
        try:
            page = reader.pages[number]
            text = "\n".join(part for part in (page.extract_text() or "", _text_boxes(page)) if part)
        except MemoryError:
            raise
        except Exception as exc:  # one bad page must not lose the others
            failed += 1
            first_error = first_error or _short(exc)
            text = ""
        _emit(out, {"page": number + 1, "text": text})
    if failed == count:
        if first_error.startswith("LimitReachedError"):
            _emit(out, {"error": "too_large", "reason": "too large: the PDF decompresses to more data than "
                                                        "allowed (a decompression bomb?)"})
        else:
            _emit(out, {"error": "malformed", "reason": f"malformed PDF: no page could be read ({first_error})"})
        return 0
    _emit(out, {"done": True, "failed_pages": failed})
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu-seconds", type=int, required=True)
    parser.add_argument("--memory-bytes", type=int, required=True)
    parser.add_argument("--max-pages", type=int, required=True)
    args = parser.parse_args()
    _limit(args.cpu_seconds, args.memory_bytes)
    logging.disable(logging.WARNING)  # pypdf warns on every odd file; the parent reports outcomes
    sys.setrecursionlimit(5000)
    data = sys.stdin.buffer.read()
    out = sys.stdout
    try:
        return extract(data, args.max_pages, out)
    except MemoryError:
        _emit(out, {"error": "too_large", "reason": "too large to parse: the parser ran out of memory"})
        return 0


if __name__ == "__main__":
    sys.exit(main())
