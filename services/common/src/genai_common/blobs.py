"""Blob store behind one small interface: a local directory (`file://`) on one machine or a
mounted volume in the cluster. Keys are server-made (`documents/<id>`, `images/<job>/<n>.png`);
they never come from user input.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlparse

from genai_common.errors import InvalidInput, NotFound

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes: ...
    async def delete(self, key: str) -> None: ...
    async def exists(self, key: str) -> bool: ...
    def writer(self, key: str) -> BlobWriter: ...


class BlobWriter(Protocol):
    """Streams one blob; visible under its key only after `commit()`, removed by `abort()`."""

    async def write(self, chunk: bytes) -> None: ...
    async def commit(self) -> None: ...
    async def abort(self) -> None: ...


def _check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key:
        raise InvalidInput(f"invalid blob key {key!r}")
    return key


class FileBlobStore:
    """Blobs as files under a root directory; writes go to a temp file renamed on commit."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def path(self, key: str) -> Path:
        return self._root / _check_key(key)

    async def put(self, key: str, data: bytes) -> None:
        writer = self.writer(key)
        try:
            await writer.write(data)
            await writer.commit()
        except BaseException:
            await writer.abort()
            raise

    async def get(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise NotFound(f"blob {key} not found") from exc

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path(key).unlink, True)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path(key).is_file)

    def writer(self, key: str) -> _FileWriter:
        return _FileWriter(self.path(key))


class _FileWriter:
    def __init__(self, final: Path) -> None:
        self._final = final
        self._tmp = final.with_name(f".{final.name}.{os.getpid()}.{id(self):x}.part")
        self._handle: BinaryIO | None = None

    async def write(self, chunk: bytes) -> None:
        if self._handle is None:
            await asyncio.to_thread(self._final.parent.mkdir, parents=True, exist_ok=True)
            self._handle = await asyncio.to_thread(_open_for_writing, self._tmp)
        await asyncio.to_thread(self._handle.write, chunk)

    async def commit(self) -> None:
        if self._handle is None:
            await self.write(b"")
        assert self._handle is not None
        handle, self._handle = self._handle, None
        await asyncio.to_thread(_fsync_close, handle)
        await asyncio.to_thread(os.replace, self._tmp, self._final)

    async def abort(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            await asyncio.to_thread(handle.close)
        await asyncio.to_thread(self._tmp.unlink, True)


def _open_for_writing(path: Path) -> BinaryIO:
    return path.open("wb")


def _fsync_close(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def open_blob_store(url: str) -> FileBlobStore:
    """`file://./var/blobs` (relative to the working directory) or `file:///abs/path`."""
    parsed = urlparse(url)
    if parsed.scheme != "file":
        raise ValueError(f"unsupported BLOB_STORE_URL scheme {parsed.scheme!r}: "
                         "use file:// (a local dir or mounted volume)")
    path = Path(parsed.netloc + parsed.path) if parsed.netloc else Path(parsed.path)
    path.mkdir(parents=True, exist_ok=True)
    return FileBlobStore(path)
