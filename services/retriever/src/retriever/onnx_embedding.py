"""The embedding model on ONNX Runtime: exported here from the loaded model (nothing downloaded),
its graph optimised for CPU, optionally quantised to int8, and cached on disk.

`EMBEDDING_BACKEND` picks the variant: `onnx` (fp32, the transformer's fused graph) or `onnx-int8`
(the MatMul weights as int8, per output channel; activations quantised on the fly). Tokenising,
pooling and normalising are the sentence-transformers model's own settings, so the vectors are
the torch model's: fp32 equal to ~1e-6; int8 close (cosine ~0.994) but it finds only ~90 % of
fp32's ten nearest neighbours again (bench/embedding_backends.py; README: Retrieval). Neither
7-bit nor uint8 weights (the AVX2 saturation fixes), static QDQ ranges nor smoothing the
activation outliers into the weights lifted that: int8 weights alone, activations left fp32,
already lose ~3 % of the neighbours. Like sentence-transformers, `encode(texts, batch_size=n)`
runs the texts sorted by length in passes of `n` (the retriever's embedder passes its own
length-sorted passes of EMBEDDING_BATCH_SIZE), so short texts are not padded to the longest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

ONNX_BACKENDS = ("onnx", "onnx-int8")
OPSET = 17
# How each backend's graph is built, as a version in the cached file's name: change a recipe (export,
# fusions, quantisation), bump its number, and graphs cached by the old recipe are no longer loaded.
RECIPES = {"onnx": 1, "onnx-int8": 1}


def export_fp32(model: SentenceTransformer, target: Path) -> None:
    """The model's transformer as an ONNX graph (token ids + mask -> token embeddings)."""
    import torch

    transformer = _transformer(model).eval()
    names = _input_names(model)

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = transformer

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, inputs, strict=True)), return_dict=False)[0]

    sample = model.tokenizer(["an example sentence", "and a second, longer one"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    with torch.inference_mode():
        torch.onnx.export(TokenEmbeddings(), tuple(sample[n] for n in names), str(target), input_names=names,
                          output_names=["token_embeddings"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={**axes, "token_embeddings": {0: "batch", 1: "tokens"}})


def optimise(source: Path, target: Path, *, heads: int, hidden: int) -> None:
    """ONNX Runtime's transformer fusions (attention, layer norm, GELU) on the exported graph."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(source), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1)
    optimized.save_model_to_file(str(target))


def quantise_int8(source: Path, target: Path, *, per_channel: bool = True, reduce_range: bool = False,
                  unsigned_weights: bool = False, op_types: Sequence[str] = ("MatMul",),
                  exclude: Sequence[str] = ()) -> None:
    """Dynamic int8 quantisation: weights stored as int8, activations scaled per call.

    `reduce_range` keeps the weights to 7 bits and `unsigned_weights` stores them as uint8: on x86
    without VNNI (AVX2 only), uint8 activations times int8 weights go through VPMADDUBSW, whose
    16-bit pair sums saturate with full-range weights; either setting avoids that."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The fused operators (com.microsoft) have no shape inference: their outputs are float.
    quantize_dynamic(str(source), str(target), per_channel=per_channel, reduce_range=reduce_range,
                     weight_type=QuantType.QUInt8 if unsigned_weights else QuantType.QInt8,
                     op_types_to_quantize=list(op_types), nodes_to_exclude=list(exclude),
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def build_variant(model: SentenceTransformer, backend: str, target: Path) -> None:
    """Export, optimise and (onnx-int8) quantise into `target`, through temporary files."""
    config = _transformer(model).config
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        exported, optimized = Path(work) / "exported.onnx", Path(work) / "optimized.onnx"
        export_fp32(model, exported)
        optimise(exported, optimized, heads=config.num_attention_heads, hidden=config.hidden_size)
        if backend == "onnx-int8":
            quantise_int8(optimized, Path(work) / "final.onnx")
        else:
            optimized.rename(Path(work) / "final.onnx")
        os.replace(Path(work) / "final.onnx", target)  # atomic: a half-written graph is never loaded


class OnnxSentenceEncoder:
    """`encode` and `get_embedding_dimension` as the sentence-transformers model has them, on ONNX Runtime."""

    def __init__(self, path: Path, model: SentenceTransformer, *, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = model.tokenizer
        self._max_tokens = int(model.max_seq_length or 512)
        self._names = _input_names(model)
        self._dimension = int(model.get_embedding_dimension() or 0)
        self._pooling = _pooling_mode(model)
        self._width = int(_transformer(model).config.hidden_size)
        self._right_padded = getattr(self._tokenizer, "padding_side", "right") == "right"

    def get_embedding_dimension(self) -> int:
        return self._dimension

    def encode(self, texts: list[str], batch_size: int = 0, **_: Any) -> np.ndarray:
        """Unit-length float32 rows (the service always normalises).

        As sentence-transformers does, the texts run sorted by length in passes of `batch_size`
        (0: one pass), each padded only to its own longest text: a pass of mixed chunks otherwise
        spends much of its attention and feed-forward work on padding."""
        tokens = self._tokenizer(texts, padding=True, truncation=True, max_length=self._max_tokens,
                                 return_tensors="np")
        inputs = {name: tokens[name].astype(np.int64) for name in self._names}
        lengths = inputs["attention_mask"].sum(axis=1)
        step = batch_size if batch_size and self._right_padded else len(texts)
        order = np.argsort(-lengths, kind="stable")
        pooled = np.empty((len(texts), self._width), dtype=np.float32)
        for start in range(0, len(texts), max(step, 1)):
            rows = order[start:start + step]
            width = int(lengths[rows].max())
            group = {name: array[rows, :width] for name, array in inputs.items()}
            pooled[rows] = self._pool(self._session.run(None, group)[0], group["attention_mask"])
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def _pool(self, hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        if self._pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask[..., None].astype(np.float32)
        return (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)


def load_onnx_encoder(model: SentenceTransformer, backend: str, cache_dir: Path, *,
                      threads: int = 0) -> OnnxSentenceEncoder:
    """The cached variant of `model` for `backend`, built first if missing (blocking: call in a thread)."""
    if backend not in ONNX_BACKENDS:
        raise ValueError(f"unknown ONNX backend {backend!r}; one of {', '.join(ONNX_BACKENDS)}")
    target = cache_dir / graph_name(model, backend)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        build_variant(model, backend, target)
        log.info("embedding model exported to ONNX", extra={"backend": backend, "path": str(target),
                                                             "seconds": round(time.perf_counter() - started, 1)})
    return OnnxSentenceEncoder(target, model, threads=threads)


def graph_name(model: SentenceTransformer, backend: str) -> str:
    """The cached graph's file name: the weights it came from and the recipe that built it."""
    return f"{_fingerprint(model)}-{backend}-r{RECIPES[backend]}.onnx"


def _transformer(model: SentenceTransformer) -> Any:
    """The Hugging Face model inside the first (Transformer) module."""
    return model[0].auto_model


def _input_names(model: SentenceTransformer) -> list[str]:
    accepted = set(model.tokenizer.model_input_names)
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]


def _pooling_mode(model: SentenceTransformer) -> str:
    pooling = model[1] if len(model) > 1 else None
    mode = getattr(pooling, "pooling_mode", None) or ("cls" if getattr(pooling, "pooling_mode_cls_token", False)
                                                       else "mean")
    if mode not in ("mean", "cls"):
        raise ValueError(f"the ONNX backend pools by mean or CLS token, not {mode!r}")
    return str(mode)


def _fingerprint(model: SentenceTransformer) -> str:
    """Names the cached graph after the weights it was exported from: every tensor, whole, so that
    new weights anywhere (a model fine-tuned with its embeddings frozen, say) export again instead
    of loading a stale graph. Hashing MiniLM's 90 MB takes a fraction of a second, once at start."""
    transformer = _transformer(model)
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(transformer.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(str(transformer.config.to_dict()).encode())
    return digest.hexdigest()
