"""The embedding adapter with the real MiniLM: unit vectors, batching, off the event loop; fp16 on CUDA."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from retriever.embedding import SentenceTransformerEmbedder, load_sentence_transformer, resolve_device
from tests.support.eventually import eventually

TEXTS = [
    "The mitochondria is the powerhouse of the cell.",
    "Preheat the oven to 200 degrees.",
    "Hold the power button for ten seconds to reset the router.",
    "Cells produce energy in their mitochondria.",
    "Bake the bread for forty minutes.",
]


async def test_embeddings_are_unit_length_and_batching_does_not_change_them(minilm) -> None:
    small = SentenceTransformerEmbedder(minilm, model_name="m", batch_size=2)
    large = SentenceTransformerEmbedder(minilm, model_name="m", batch_size=32)
    a, b = await small.embed(TEXTS), await large.embed(TEXTS)
    assert a.shape == (5, 384) and a.dtype == np.float32 and small.dimension == 384
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.allclose(a, b, atol=1e-5)
    # Texts are grouped by length to be encoded; each row still belongs to its own text.
    alone = np.concatenate([await large.embed([text]) for text in TEXTS])
    assert np.allclose(a, alone, atol=1e-5)
    cosine = a @ a.T
    assert int(np.argsort(-cosine[0])[1]) == 3  # the two mitochondria sentences are nearest neighbours
    assert (await small.embed([])).shape == (0, 384)


async def test_encoding_runs_off_the_event_loop(minilm) -> None:
    embedder = SentenceTransformerEmbedder(minilm, model_name="m", batch_size=16)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await embedder.embed(TEXTS * 20)
    done.set()
    await task
    assert ticks > 10  # a blocking encode would have starved the ticker until it returned


class HeldModel:
    """Stands in for a model whose encode occupies its thread until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def get_embedding_dimension(self) -> int:
        return 3

    def encode(self, batch: list[str], **_: Any) -> np.ndarray:
        self.calls += 1
        self.release.wait(10)
        return np.ones((len(batch), 3), dtype=np.float32)


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(4)
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


async def test_a_cancelled_embed_keeps_its_slot_until_its_encode_thread_is_done() -> None:
    # A caller that gives up (deadline) cannot stop the thread already encoding; the next encode
    # must wait for that thread, or abandoned encodes would pile up beyond `concurrency`.
    executor = CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    model = HeldModel()
    embedder = SentenceTransformerEmbedder(model, model_name="m", concurrency=1)  # type: ignore[arg-type]
    abandoned = asyncio.ensure_future(embedder.embed(["first"]))
    await eventually(lambda: model.calls, lambda calls: calls >= 1, within=10, every=0.01, what="the first encode")
    abandoned.cancel()
    with pytest.raises(asyncio.CancelledError):
        await abandoned

    waiting = asyncio.ensure_future(embedder.embed(["second"]))
    for _ in range(20):
        await asyncio.sleep(0)
    assert executor.submitted == 1  # still held by the abandoned encode

    model.release.set()
    assert (await waiting).shape == (1, 3)
    assert executor.submitted == 2 and model.calls == 2


def test_an_explicit_device_wins_over_detection() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(None) in ("cpu", "cuda")


@pytest.mark.gpu
async def test_fp16_on_cuda_matches_fp32(minilm) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    half = load_sentence_transformer("all-MiniLM-L6-v2", "cuda")  # the service's GPU path: fp16
    assert next(half.parameters()).dtype == torch.float16
    fp16 = await SentenceTransformerEmbedder(half, model_name="m").embed(TEXTS)
    fp32 = await SentenceTransformerEmbedder(minilm, model_name="m").embed(TEXTS)
    agreement = np.sum(fp16 * fp32, axis=1)
    assert agreement.min() > 0.999  # each fp16 vector points the same way as its fp32 twin
    assert np.array_equal(np.argsort(-(fp16 @ fp16.T), axis=1)[:, :3], np.argsort(-(fp32 @ fp32.T), axis=1)[:, :3])
