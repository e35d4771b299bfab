"""What an upload really is, decided from its bytes as they stream in (never the declared type).

- PDF: a `%PDF-` header in the first KiB (where readers look for it), or a PDF comment line
  followed by an indirect object (`1 0 obj`), which readers also open; never a file that starts
  with another format's signature (a PNG, an executable... with `%PDF-` a few bytes in);
- text: valid UTF-8 throughout, no NUL bytes, almost no other control characters;
- Markdown: text whose name ends in .md/.markdown, or whose start looks like Markdown.
Anything else is refused as soon as the bytes prove it (a PNG fails on its first byte).
"""

from __future__ import annotations

import codecs
import re

from genai_common.errors import UnsupportedMediaType, ValidationFailed

PDF = "application/pdf"
TEXT = "text/plain"
MARKDOWN = "text/markdown"

HEAD_BYTES = 64 * 1024
_PDF_WINDOW = 1024
_PDF_OBJECT = re.compile(rb"^%[^\r\n]*[\r\n]+\s*\d+\s+\d+\s+obj\b")
# Signatures at offset 0 of formats that are not PDFs, however much they mention `%PDF-`.
_OTHER_SIGNATURES = (
    b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"\x7fELF", b"MZ", b"PK\x03\x04", b"\x1f\x8b",
    b"7z\xbc\xaf", b"Rar!", b"RIFF", b"\xca\xfe\xba\xbe", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe",
    b"\x00asm", b"#!",
)
_MARKDOWN_EXTENSIONS = frozenset({"md", "markdown", "mdown", "mkd"})
_MARKDOWN_LINES = re.compile(r"^(#{1,6} \S|```|~~~|[-*+] \[[ xX]\] |\|.*\|\s*$|> \S)", re.MULTILINE)
# Linear on any input: a link's text and target stop at the next bracket, so each run of
# characters between two brackets is scanned from one start only (no backtracking across "[[[[").
_MARKDOWN_INLINE = re.compile(r"\[[^\[\]\n]+\]\([^()\[\]\s]+\)|\*\*[^*\n]+\*\*")
# Control characters that do not occur in real text (tab, LF, FF, CR are fine).
_BINARY_CONTROLS = re.compile(r"[\x01-\x08\x0b\x0e-\x1f\x7f]")


UNSUPPORTED = "unsupported file type: upload a PDF, plain text or Markdown file"


def _unsupported() -> UnsupportedMediaType:
    """The bytes are neither a PDF nor UTF-8 text."""
    return UnsupportedMediaType(UNSUPPORTED, code="unsupported_media_type", param="file")


class Sniffer:
    """Fed every chunk of the file in order; `finish()` names the media type or raises."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._size = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._maybe_text = True
        self._pdf: bool | None = None
        self._controls = 0

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._size += len(chunk)
        if len(self._head) < HEAD_BYTES:
            self._head += chunk[: HEAD_BYTES - len(self._head)]
        if self._pdf is None and len(self._head) >= _PDF_WINDOW:
            self._pdf = _looks_like_pdf(bytes(self._head))
        if self._maybe_text and not self._pdf:
            self._feed_text(chunk, final=False)
        if self._pdf is False and not self._maybe_text:
            raise _unsupported()

    def _feed_text(self, chunk: bytes, *, final: bool) -> None:
        try:
            decoded = self._decoder.decode(chunk, final=final)
        except UnicodeDecodeError:
            self._maybe_text = False
            return
        if "\x00" in decoded:
            self._maybe_text = False
            return
        self._controls += len(_BINARY_CONTROLS.findall(decoded))
        # A stray control character is tolerated; binary data has many.
        if self._controls > 8 and self._controls * 200 > self._size:
            self._maybe_text = False

    def finish(self, filename_extension: str) -> str:
        if self._size == 0:
            raise ValidationFailed("file: the file is empty", code="validation_error", param="file")
        if self._pdf is None:
            self._pdf = _looks_like_pdf(bytes(self._head))
        if self._pdf:
            return PDF
        if self._maybe_text:
            self._feed_text(b"", final=True)
        if not self._maybe_text:
            raise _unsupported()
        if filename_extension in _MARKDOWN_EXTENSIONS or _looks_like_markdown(bytes(self._head)):
            return MARKDOWN
        return TEXT


def _looks_like_pdf(head: bytes) -> bool:
    window = head[:_PDF_WINDOW]
    if window.startswith(_OTHER_SIGNATURES):
        return False
    return b"%PDF-" in window or bool(_PDF_OBJECT.match(window))


def _looks_like_markdown(head: bytes) -> bool:
    text = head.decode("utf-8", errors="ignore")
    block_marks = len(_MARKDOWN_LINES.findall(text))
    inline_marks = len(_MARKDOWN_INLINE.findall(text))
    return block_marks >= 2 or (block_marks >= 1 and inline_marks >= 1)
