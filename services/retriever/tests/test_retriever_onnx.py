"""The ONNX Runtime backends, exported from the real MiniLM: the same vectors (fp32), the same
neighbours (int8), built once and reused, CPU only."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from retriever import onnx_embedding
from retriever.embedding import SentenceTransformerEmbedder
from retriever.onnx_embedding import load_onnx_encoder
from retriever.settings import RetrieverSettings

TEXTS = [
    "The mitochondria is the powerhouse of the cell.",
    "Preheat the oven to 200 degrees.",
    "Hold the power button for ten seconds to reset the router.",
    "Cells produce energy in their mitochondria.",
    "Bake the bread for forty minutes.",
    "Unplug the modem, wait a minute, and plug it back in to restore the connection.",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-models")


async def test_fp32_onnx_gives_the_torch_vectors(minilm, cache_dir: Path) -> None:
    onnx = SentenceTransformerEmbedder(load_onnx_encoder(minilm, "onnx", cache_dir), model_name="m")
    torch = SentenceTransformerEmbedder(minilm, model_name="m")
    a, b = await onnx.embed(TEXTS), await torch.embed(TEXTS)
    assert a.shape == (6, 384) and a.dtype == np.float32 and onnx.dimension == 384
    assert np.allclose(a, b, atol=1e-4)


async def test_int8_onnx_keeps_each_texts_nearest_neighbour(minilm, cache_dir: Path) -> None:
    int8 = await SentenceTransformerEmbedder(load_onnx_encoder(minilm, "onnx-int8", cache_dir), model_name="m").embed(
        TEXTS)
    fp32 = await SentenceTransformerEmbedder(minilm, model_name="m").embed(TEXTS)
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert np.sum(int8 * fp32, axis=1).min() > 0.97  # each int8 vector points nearly where fp32's does

    def nearest(vectors: np.ndarray) -> list[int]:
        cosine = vectors @ vectors.T
        np.fill_diagonal(cosine, -1)
        return [int(i) for i in np.argmax(cosine, axis=1)]

    assert nearest(int8) == nearest(fp32) == [3, 4, 5, 0, 1, 2]


def test_an_exported_graph_is_reused_not_rebuilt(minilm, cache_dir: Path) -> None:
    load_onnx_encoder(minilm, "onnx", cache_dir)
    graphs = {path: path.stat().st_mtime_ns for path in cache_dir.glob("*.onnx")}
    started = time.perf_counter()
    load_onnx_encoder(minilm, "onnx", cache_dir)
    assert {path: path.stat().st_mtime_ns for path in cache_dir.glob("*.onnx")} == graphs
    assert time.perf_counter() - started < 5  # an export takes several seconds; loading one does not
    assert not [p for p in cache_dir.iterdir() if p.suffix != ".onnx"]  # no temporary files left behind


def test_new_weights_in_any_layer_export_a_new_graph(minilm, cache_dir: Path) -> None:
    """A model changed only in its last layer (fine-tuned with the rest frozen) must not load the
    graph exported from the original."""
    original = load_onnx_encoder(minilm, "onnx", cache_dir)
    tuned = copy.deepcopy(minilm)
    last = [name for name in tuned[0].auto_model.state_dict() if name.endswith("output.dense.weight")][-1]
    with torch.no_grad():
        tuned[0].auto_model.get_parameter(last).mul_(1.5)
    before = set(cache_dir.glob("*.onnx"))
    changed = load_onnx_encoder(tuned, "onnx", cache_dir)
    assert len(set(cache_dir.glob("*.onnx")) - before) == 1
    assert not np.allclose(changed.encode(TEXTS), original.encode(TEXTS), atol=1e-4)
    assert np.allclose(changed.encode(TEXTS), tuned.encode(TEXTS, normalize_embeddings=True), atol=1e-4)


def test_sorted_sub_batches_give_each_text_its_one_batch_vector(minilm, cache_dir: Path) -> None:
    """Texts run sorted by length in groups, each padded to its own longest: the vectors must be the
    ones the whole batch gives, each in its text's place."""
    texts = [TEXTS[5], "Short.", TEXTS[2], "Two words", TEXTS[0], TEXTS[4], "A third, slightly longer text."]
    encoder = load_onnx_encoder(minilm, "onnx", cache_dir)
    whole, grouped = encoder.encode(texts), encoder.encode(texts, batch_size=2)
    assert np.allclose(grouped, whole, atol=1e-5)
    assert np.allclose(grouped, minilm.encode(texts, normalize_embeddings=True), atol=1e-4)


def test_a_changed_recipe_builds_a_new_graph(minilm, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A graph cached by an older export or quantisation recipe must not be loaded by a newer one."""
    load_onnx_encoder(minilm, "onnx", cache_dir)
    before = set(cache_dir.glob("*.onnx"))
    monkeypatch.setitem(onnx_embedding.RECIPES, "onnx", onnx_embedding.RECIPES["onnx"] + 1)
    load_onnx_encoder(minilm, "onnx", cache_dir)
    assert [p.name for p in set(cache_dir.glob("*.onnx")) - before] == [onnx_embedding.graph_name(minilm, "onnx")]


def test_the_onnx_backends_refuse_a_gpu_device_at_start() -> None:
    with pytest.raises(ValidationError, match="runs on the CPU"):
        RetrieverSettings(embedding_backend="onnx-int8", embedding_device="cuda")
    assert RetrieverSettings(embedding_backend="onnx", embedding_device="cpu").embedding_backend == "onnx"
    with pytest.raises(ValidationError):
        RetrieverSettings(embedding_backend="tensorrt")
