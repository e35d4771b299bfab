"""Data left by qdrant-client's local mode (the retriever's store before the embedded engine).

Local mode kept each collection in `<QDRANT_PATH>/collection/<name>/storage.sqlite`; the embedded
engine cannot read it. Starting over it with an empty index would silently lose every document,
so the retriever refuses to start and says how to re-index instead.
"""

from __future__ import annotations

from pathlib import Path


class LocalModeData(RuntimeError):
    """The store path holds the collection in qdrant-client's local-mode format."""


def refuse_local_mode_data(root: Path, collection: str) -> None:
    """Raise `LocalModeData` if `root` holds `collection` as local mode wrote it."""
    legacy = root / "collection" / collection
    if not legacy.is_dir():
        return
    raise LocalModeData(
        f"{legacy} holds the collection {collection!r} in qdrant-client's local-mode format, which the "
        "embedded Qdrant engine (Qdrant Edge) cannot read, and starting without it would serve an empty "
        "index. To re-index: stop the retriever, move that directory (and "
        f"{root / 'meta.json'}) out of QDRANT_PATH, start the retriever, and upload the documents again "
        "(each document's upload is kept by the gateway: re-send them with POST /v1/documents). "
        "Or keep serving the old data by setting QDRANT_URL to a Qdrant server holding the collection."
    )
