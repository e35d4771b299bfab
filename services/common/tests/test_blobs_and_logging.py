"""Blob store writes are atomic; logs are JSON lines with the request id."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from genai_common.blobs import FileBlobStore, open_blob_store
from genai_common.errors import InvalidInput, NotFound
from genai_common.logging import JsonFormatter, request_id_var


async def test_streamed_blob_is_invisible_until_commit_and_gone_after_abort(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    writer = store.writer("documents/abc")
    await writer.write(b"part one ")
    assert not await store.exists("documents/abc")
    await writer.write(b"part two")
    await writer.commit()
    assert await store.get("documents/abc") == b"part one part two"

    aborted = store.writer("documents/def")
    await aborted.write(b"half")
    await aborted.abort()
    assert not await store.exists("documents/def")
    assert [p.name for p in (tmp_path / "documents").iterdir()] == ["abc"]


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a/../../b", "a//b", "", "a/.hidden"])
async def test_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidInput):
        await FileBlobStore(tmp_path).put(key, b"x")


async def test_missing_blob_is_not_found_and_delete_is_idempotent(tmp_path: Path) -> None:
    store = open_blob_store(f"file://{tmp_path}")
    with pytest.raises(NotFound):
        await store.get("images/none.png")
    await store.put("images/one.png", b"png")
    await store.delete("images/one.png")
    await store.delete("images/one.png")
    assert not await store.exists("images/one.png")


def test_log_lines_are_json_with_request_id_and_extras() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("svc"))
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id_var.set("rid-1")
    try:
        logger.warning("indexed %d chunks", 3, extra={"document_id": "doc-9"})
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "indexed 3 chunks"
    assert entry["request_id"] == "rid-1" and entry["document_id"] == "doc-9" and entry["service"] == "svc"
