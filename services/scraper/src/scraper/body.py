"""Bounded body decoding: counts raw and decoded bytes and stops at the cap (zip bombs included)."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

SUPPORTED_ENCODINGS = ("identity", "gzip", "x-gzip", "deflate")
ACCEPT_ENCODING = "gzip, deflate"
# Each decompression step inflates at most this much, so a bomb never balloons in memory.
_STEP = 64 * 1024


class TooLarge(Exception):
    pass


class UnsupportedEncoding(Exception):
    pass


class BoundedDecoder:
    """Decodes one Content-Encoding (identity, gzip, deflate) into at most `limit` bytes."""

    def __init__(self, content_encoding: str, limit: int) -> None:
        encoding = content_encoding.strip().lower() or "identity"
        if encoding not in SUPPORTED_ENCODINGS:
            raise UnsupportedEncoding(f"unsupported content encoding {encoding!r}")
        self._limit = limit
        self._size = 0
        self._parts: list[bytes] = []
        self._deflate = encoding == "deflate"
        self._inflater: zlib._Decompress | None = None
        if encoding in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._sniffed = not self._deflate

    @property
    def size(self) -> int:
        return self._size

    def feed(self, data: bytes) -> None:
        if not self._sniffed and data:
            # "deflate" is meant to be zlib-wrapped, but servers also send raw deflate.
            wrapped = (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1 if len(data) > 1 else 0]) % 31 == 0
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            self._sniffed = True
        if self._inflater is None:
            self._append(data)
            return
        try:
            while True:
                out = self._inflater.decompress(data, _STEP)
                self._append(out)
                data = self._inflater.unconsumed_tail
                if not data and len(out) < _STEP:  # a full step may leave output pending
                    break
        except zlib.error as exc:
            raise ValueError(f"corrupt compressed body: {exc}") from exc

    def finish(self) -> bytes:
        if self._inflater is not None:
            try:
                self._append(self._inflater.flush())
            except zlib.error as exc:
                raise ValueError(f"corrupt compressed body: {exc}") from exc
        return b"".join(self._parts)

    def _append(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._size += len(chunk)
        if self._size > self._limit:
            raise TooLarge(f"body larger than {self._limit} bytes once decoded")
        self._parts.append(chunk)


async def read_bounded(raw: AsyncIterator[bytes], content_encoding: str, limit: int) -> bytes:
    """Read a raw (still encoded) body stream, refusing more than `limit` bytes raw or decoded."""
    decoder = BoundedDecoder(content_encoding, limit)
    received = 0
    async for chunk in raw:
        received += len(chunk)
        if received > limit:
            raise TooLarge(f"body larger than {limit} bytes")
        decoder.feed(chunk)
    return decoder.finish()
