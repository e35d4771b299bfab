"""Small PDFs written by hand for the ingest tests (no PDF library needed to make them)."""

from __future__ import annotations

import io
import textwrap
import zlib


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _content(text: str) -> bytes:
    lines = textwrap.wrap(text, 90) or [""]
    ops = ["BT", "/F1 10 Tf", "12 TL", "40 800 Td"]
    ops += [f"({_escape(line)}) Tj T*" for line in lines]
    ops.append("ET")
    return "\n".join(ops).encode("latin-1", errors="replace")


def pdf_from_streams(streams: list[bytes], *, compress: bool = False) -> bytes:
    """A valid PDF with one page per content stream, Helvetica as /F1, and a correct xref."""
    n = len(streams)
    page_ids = [4 + 2 * i for i in range(n)]
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {n} >>".encode(),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    for page_id, stream in zip(page_ids, streams, strict=True):
        body = zlib.compress(stream) if compress else stream
        flt = b" /Filter /FlateDecode" if compress else b""
        objects[page_id] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>").encode()
        objects[page_id + 1] = b"<< /Length %d%s >>\nstream\n" % (len(body), flt) + body + b"\nendstream"
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = out.tell()
        out.write(b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n")
    xref = out.tell()
    size = max(objects) + 1
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
    for number in range(1, size):
        out.write(b"%010d 00000 n \n" % offsets[number])
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref))
    return out.getvalue()


def text_pdf(pages: list[str]) -> bytes:
    return pdf_from_streams([_content(text) for text in pages])


def blank_pdf(pages: int = 2) -> bytes:
    return pdf_from_streams([b"" for _ in range(pages)])


def encrypted_pdf(text: str, user_password: str, owner_password: str = "owner") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf([text]))))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def slow_pdf(operators: int = 400_000) -> bytes:
    """Parses fine but makes text extraction grind (many tiny text operators)."""
    stream = b"BT /F1 1 Tf\n" + b"(a) Tj 0.01 0 Td\n" * operators + b"ET"
    return pdf_from_streams([stream], compress=True)
