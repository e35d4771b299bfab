"""The upload's real type comes from its bytes, whatever the client declares."""

from __future__ import annotations

import pytest

from gateway.documents.naming import document_name
from gateway.documents.sniff import Sniffer
from genai_common.errors import UnsupportedMediaType, ValidationFailed


def sniff(data: bytes, extension: str = "", chunk: int = 7) -> str:
    sniffer = Sniffer()
    for start in range(0, len(data), chunk):
        sniffer.feed(data[start:start + chunk])
    return sniffer.finish(extension)


@pytest.mark.parametrize(("data", "expected"), [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "application/pdf"),
    (b"\n\n  %PDF-1.4\n" + b"\x00" * 50, "application/pdf"),  # junk before the header, as readers allow
    (b"%\xe2\xe3\xcf\xd3\n1 0 obj \n<<\n/Pages 2 0 R\n>>", "application/pdf"),  # no header, PDF objects
    ("Plain text with a stray \x07 bell.\n".encode(), "text/plain"),
    ("\ufeffBOM-prefixed UTF-8.".encode(), "text/plain"),
    (b"# Notes\n\n- [ ] todo\n", "text/markdown"),
])
def test_real_type_is_sniffed(data: bytes, expected: str) -> None:
    assert sniff(data) == expected


def test_a_split_multibyte_character_across_chunks_is_still_text() -> None:
    assert sniff(("é" * 1000).encode(), chunk=3) == "text/plain"


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n" + bytes(2000),
    b"GIF89a" + bytes(range(256)) * 8,
    b"PK\x03\x04" + bytes(range(256)) * 8,  # a zip (docx, xlsx...)
    b"text\x00with a NUL",
    bytes(range(1, 32)) * 40,  # valid UTF-8 but control characters throughout
])
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType):
        sniff(data)


def test_a_png_is_refused_on_its_first_chunk() -> None:
    sniffer = Sniffer()
    with pytest.raises(UnsupportedMediaType):
        sniffer.feed(b"\x89PNG\r\n\x1a\n" + bytes(4096))


def test_empty_upload_is_refused_naming_the_file_field() -> None:
    with pytest.raises(ValidationFailed) as refused:
        Sniffer().finish("txt")
    assert refused.value.param == "file"


def test_markdown_extension_only_counts_for_text() -> None:
    assert sniff(b"just words", "md") == "text/markdown"
    assert sniff(b"%PDF-1.4\n" + bytes(100), "md") == "application/pdf"


@pytest.mark.parametrize(("raw", "media_type", "expected"), [
    (None, "application/pdf", "document.pdf"),
    ("/etc/../../secret.md", "text/markdown", "secret.md"),
    ("a<b>c:d|e?.txt", "text/plain", "a_b_c_d_e_.txt"),
    ("\u202egnp.pdf", "application/pdf", "gnp.pdf"),
    ("  spaced    out\tname .pdf ", "application/pdf", "spaced out name .pdf"),
])
def test_file_names_are_display_safe(raw: str | None, media_type: str, expected: str) -> None:
    assert document_name(raw, media_type) == expected
