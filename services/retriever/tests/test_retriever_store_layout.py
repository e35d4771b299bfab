"""On a Qdrant server in distributed mode the retriever creates its collection with the shard
count and replication factor from its settings (no Qdrant server runs here: `FakeQdrantServer`
answers the few REST calls collection creation makes and records what it was asked)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from retriever.app import build_store
from retriever.domain import CollectionIdentity
from retriever.settings import RetrieverSettings

MINILM = CollectionIdentity("all-MiniLM-L6-v2", 384, "bm25-english")
# The client's version check is best effort; the fake does not play it.
pytestmark = pytest.mark.filterwarnings("ignore:Failed to obtain server version")


class FakeQdrantServer:
    """A Qdrant REST endpoint with no collections; records collection-creation bodies."""

    def __init__(self) -> None:
        self.created: dict[str, dict[str, Any]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, result: object) -> None:
                body = json.dumps({"result": result, "status": "ok", "time": 0.0}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.endswith("/exists"):
                    self._answer({"exists": False})
                else:
                    self.send_error(404)

            def do_PUT(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                path = self.path.split("?", 1)[0]
                if path.endswith("/index"):
                    self._answer({"operation_id": 1, "status": "completed"})
                    return
                fake.created[path.rsplit("/", 1)[-1]] = body
                self._answer(True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeQdrantServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def qdrant() -> Iterator[FakeQdrantServer]:
    with FakeQdrantServer() as server:
        yield server


async def test_a_new_collection_gets_the_configured_shards_and_replicas(qdrant: FakeQdrantServer) -> None:
    settings = RetrieverSettings(qdrant_url=qdrant.url, qdrant_collection="chunks", qdrant_shard_number=6,
                                 qdrant_replication_factor=2, qdrant_timeout_seconds=5)
    store = build_store(settings)
    await store.open(MINILM)
    await store.close()
    body = qdrant.created["chunks"]
    assert (body["shard_number"], body["replication_factor"]) == (6, 2)
    assert body["vectors"]["dense"]["size"] == 384


async def test_one_shard_and_no_replica_by_default(qdrant: FakeQdrantServer) -> None:
    store = build_store(RetrieverSettings(qdrant_url=qdrant.url, qdrant_collection="chunks", qdrant_timeout_seconds=5))
    await store.open(MINILM)
    await store.close()
    assert (qdrant.created["chunks"]["shard_number"], qdrant.created["chunks"]["replication_factor"]) == (1, 1)
