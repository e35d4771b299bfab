"""Streaming multipart reception: the file part goes chunk by chunk into a blob writer.

The body is never held whole in memory: `python_multipart`'s push parser turns each network
chunk into part events; the file's bytes are hashed, sniffed, counted against the cap and
written to the blob store as they arrive. The form is bounded too: at most MAX_PARTS parts,
MAX_PART_HEADER_BYTES of headers per part, MAX_FIELD_BYTES of other fields, and nothing after
the closing boundary is read. The caller aborts the writer on any error.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import Message
from email.utils import collapse_rfc2231_value
from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from gateway.documents.naming import extension
from gateway.documents.sniff import Sniffer
from genai_common.blobs import BlobWriter
from genai_common.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

if TYPE_CHECKING:  # the library defines its callback table for type checkers only
    from python_multipart.multipart import MultipartCallbacks

FILE_FIELD = "file"
WRITE_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 64 * 1024
# A form is the file and a few fields: more parts, or a part whose headers are longer than this,
# is no upload but an attempt to keep the parser busy.
MAX_PARTS = 16
MAX_PART_HEADER_BYTES = 8 * 1024


def too_large(message: str) -> PayloadTooLarge:
    """The file part is over the cap."""
    return PayloadTooLarge(message, code="file_too_large", param=FILE_FIELD)


@dataclass(frozen=True)
class ReceivedFile:
    raw_filename: str | None
    size: int
    sha256: str
    media_type: str


@dataclass
class _PartState:
    """What the parser callbacks saw; drained after every network chunk."""

    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    disposition: str = ""
    in_file: bool = False
    file_seen: bool = False
    file_done: bool = False
    filename: str | None = None
    pending: list[bytes] = field(default_factory=list)
    field_bytes: int = 0
    parts: int = 0
    header_bytes: int = 0
    ended: bool = False


def boundary_of(content_type: str) -> bytes:
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType("send the file as multipart/form-data with a `file` field",
                                   code="unsupported_media_type", param=FILE_FIELD)
    return boundary


def _filename(disposition: str) -> str | None:
    """The file name, preferring RFC 5987/6266 `filename*` over `filename`."""
    message = Message()
    message["content-disposition"] = disposition
    for key, value in message.get_params(header="content-disposition") or ():
        # The email package decodes `filename*=UTF-8''...` into a (charset, language, value) tuple.
        if key.lower() == "filename" and isinstance(value, tuple):
            return collapse_rfc2231_value(value)
    return message.get_filename()


def _part_name(disposition: str) -> str | None:
    message = Message()
    message["content-disposition"] = disposition
    name = message.get_param("name", header="content-disposition")
    return collapse_rfc2231_value(name) if name else None


def _callbacks(state: _PartState) -> MultipartCallbacks:
    # The limits are checked inside the parser's callbacks: raising there stops it at once, in the
    # middle of a network chunk (a 64 KiB chunk of empty parts would otherwise cost ~90 ms).
    def on_part_begin() -> None:
        state.disposition = ""
        state.in_file = False
        state.parts += 1
        state.header_bytes = 0
        if state.parts > MAX_PARTS:
            raise InvalidInput(f"the form has more than {MAX_PARTS} parts", code="too_many_parts")

    def count_header(length: int) -> None:
        state.header_bytes += length
        if state.header_bytes > MAX_PART_HEADER_BYTES:
            raise InvalidInput(f"a part's headers are longer than {MAX_PART_HEADER_BYTES} bytes",
                               code="part_headers_too_large")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        count_header(end - start)
        state.header_field += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        count_header(end - start)
        state.header_value += data[start:end]

    def on_header_end() -> None:
        if bytes(state.header_field).lower() == b"content-disposition":
            state.disposition = bytes(state.header_value).decode("utf-8", errors="replace")
        state.header_field.clear()
        state.header_value.clear()

    def on_headers_finished() -> None:
        is_file = _part_name(state.disposition) == FILE_FIELD or _filename(state.disposition) is not None
        state.in_file = is_file and not state.file_seen
        if state.in_file:
            state.file_seen = True
            state.filename = _filename(state.disposition)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state.in_file:
            state.pending.append(data[start:end])
        else:
            state.field_bytes += end - start

    def on_part_end() -> None:
        if state.in_file:
            state.file_done = True
            state.in_file = False

    def on_end() -> None:
        state.ended = True

    return {"on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
            "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data, "on_part_end": on_part_end, "on_end": on_end}


async def receive_file(body: AsyncIterator[bytes], content_type: str, sink: BlobWriter, *,
                       max_bytes: int) -> ReceivedFile:
    """Parse the multipart `body`, streaming the `file` part into `sink` (not committed here)."""
    state = _PartState()
    parser = MultipartParser(boundary_of(content_type), _callbacks(state))
    sniffer, digest = Sniffer(), hashlib.sha256()
    size, buffered = 0, bytearray()
    async for chunk in body:
        try:
            parser.write(chunk)
        except MultipartParseError as exc:
            raise InvalidInput(f"malformed multipart body: {exc}") from exc
        if state.field_bytes > MAX_FIELD_BYTES:
            raise InvalidInput("form fields other than `file` are too large")
        for piece in state.pending:
            size += len(piece)
            if size > max_bytes:
                raise too_large(f"the file is larger than the {max_bytes}-byte limit")
            sniffer.feed(piece)
            digest.update(piece)
            buffered += piece
        state.pending.clear()
        if len(buffered) >= WRITE_BYTES:
            await sink.write(bytes(buffered))
            buffered.clear()
        if state.ended:
            break  # nothing after the closing boundary is read
    if not state.file_seen:
        raise ValidationFailed("file: the form has no `file` part", code="validation_error", param=FILE_FIELD)
    if not (state.file_done and state.ended):
        raise InvalidInput("the upload ended before the multipart body was complete")
    media_type = sniffer.finish(extension(state.filename))
    if buffered:
        await sink.write(bytes(buffered))
    return ReceivedFile(state.filename, size, digest.hexdigest(), media_type)
