"""Shared encodes: what many small documents indexed at once cost, and who sees a failure."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from retriever.batching import EncodeBatcher
from retriever.embedding import SentenceTransformerEmbedder
from tests.support.eventually import eventually


class GatedEncoder:
    """An encode that waits for `gate` and returns each text's length (so rows are checkable);
    a text "bad" makes the whole encode fail, as a model error would."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.batches: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        self.gate.wait(10)
        if "bad" in texts:
            raise ValueError("the model could not encode 'bad'")
        return np.array([[float(len(t)), 1.0] for t in texts], dtype=np.float32)


def rows(texts: list[str]) -> np.ndarray:
    return np.array([[float(len(t)), 1.0] for t in texts], dtype=np.float32)


async def test_documents_arriving_while_the_model_is_busy_share_the_next_encode() -> None:
    encoder = GatedEncoder()
    batcher = EncodeBatcher(encoder, batch_size=32)
    first = asyncio.ensure_future(batcher.encode(["a"]))
    await eventually(lambda: len(encoder.batches), lambda n: n == 1, within=10, every=0.01, what="first encode")
    documents = [[f"doc{i}-chunk0", f"doc{i}-chunk-one"] for i in range(10)]
    waiting = [asyncio.ensure_future(batcher.encode(texts)) for texts in documents]
    await asyncio.sleep(0)
    encoder.gate.set()
    assert np.array_equal(await first, rows(["a"]))
    results = await asyncio.gather(*waiting)
    for texts, got in zip(documents, results, strict=True):
        assert np.array_equal(got, rows(texts))  # each caller gets its own rows, in its order
    assert len(encoder.batches) == 2  # ten documents, one encode
    assert encoder.batches[1] == [t for texts in documents for t in texts]


async def test_a_shared_encode_is_capped_at_the_batch_size_and_large_callers_take_turns() -> None:
    encoder = GatedEncoder()
    batcher = EncodeBatcher(encoder, batch_size=4)
    blocker = asyncio.ensure_future(batcher.encode(["x"]))
    await eventually(lambda: len(encoder.batches), lambda n: n == 1, within=10, every=0.01, what="first encode")
    large = asyncio.ensure_future(batcher.encode([f"large{i}" for i in range(10)]))
    await asyncio.sleep(0)
    query = asyncio.ensure_future(batcher.encode(["query"]))
    await asyncio.sleep(0)
    encoder.gate.set()
    await asyncio.gather(blocker, large, query)
    assert all(len(batch) <= 4 for batch in encoder.batches)
    # The query went in before the large document's last parts: a search is not held up by a
    # long document being indexed.
    query_batch = next(i for i, batch in enumerate(encoder.batches) if "query" in batch)
    assert query_batch < len(encoder.batches) - 1


async def test_one_callers_bad_input_fails_that_caller_only() -> None:
    encoder = GatedEncoder()
    batcher = EncodeBatcher(encoder, batch_size=32)
    blocker = asyncio.ensure_future(batcher.encode(["x"]))
    await eventually(lambda: len(encoder.batches), lambda n: n == 1, within=10, every=0.01, what="first encode")
    good_before = asyncio.ensure_future(batcher.encode(["good", "chunks"]))
    bad = asyncio.ensure_future(batcher.encode(["bad"]))
    good_after = asyncio.ensure_future(batcher.encode(["also good"]))
    await asyncio.sleep(0)
    encoder.gate.set()
    await blocker
    assert np.array_equal(await good_before, rows(["good", "chunks"]))
    assert np.array_equal(await good_after, rows(["also good"]))
    with pytest.raises(ValueError, match="bad"):
        await bad


async def test_a_caller_that_gives_up_while_waiting_is_not_encoded() -> None:
    encoder = GatedEncoder()
    batcher = EncodeBatcher(encoder, batch_size=32)
    blocker = asyncio.ensure_future(batcher.encode(["x"]))
    await eventually(lambda: len(encoder.batches), lambda n: n == 1, within=10, every=0.01, what="first encode")
    gone = asyncio.ensure_future(batcher.encode(["abandoned"]))
    kept = asyncio.ensure_future(batcher.encode(["kept"]))
    await asyncio.sleep(0)
    gone.cancel()
    encoder.gate.set()
    await blocker
    assert np.array_equal(await kept, rows(["kept"]))
    assert encoder.batches[1] == ["kept"]


async def test_shared_encodes_give_the_same_vectors_as_encoding_alone(minilm) -> None:
    embedder = SentenceTransformerEmbedder(minilm, model_name="m", batch_size=32)
    documents = [["Cells produce energy in their mitochondria.", "Bake the bread for forty minutes."],
                 ["Hold the power button for ten seconds."], ["Preheat the oven.", "The router resets."]]
    together = await asyncio.gather(*(embedder.embed(texts) for texts in documents))
    for texts, got in zip(documents, together, strict=True):
        assert np.allclose(got, await embedder.embed(texts), atol=1e-5)
