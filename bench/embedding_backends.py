"""The embedding model's backends on CPU: torch fp32 against ONNX Runtime variants, same chunks, same run.

For each variant: chunks/s encoding SciFact chunks (batch 32, the retriever's default), and how
close its vectors stay to torch fp32: recall@10 of each query's nearest neighbours among the
abstracts (the fp32 top 10 found again), the mean cosine between a text's two vectors, and
dense nDCG@10 on SciFact dev. Torch is measured before and after the variants (the mean is the
baseline) since this machine is shared. Every graph is exported here from the bundled model.

    .venv/bin/python bench/embedding_backends.py                 # every variant; 5,183 abstracts, nDCG too
    .venv/bin/python bench/embedding_backends.py --abstracts 400  # a smaller corpus (recall only)
    .venv/bin/python bench/embedding_backends.py --quick          # 1,000 abstracts, the shipped variants only

Targets (EMBEDDING_BACKEND=onnx-int8): ≥ 2× torch fp32 chunks/s, neighbour recall@10 ≥ 0.98,
nDCG@10 within 0.005 of fp32 (the hybrid figure through the ingest path: bench/scifact_ingest.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import scifact_data  # noqa: E402

from ingest.chunking import ChunkingPolicy, chunk_pages  # noqa: E402
from ingest.clean import clean_text  # noqa: E402
from retriever.embedding import CPU_BATCH_SIZE, load_sentence_transformer  # noqa: E402
from retriever.onnx_embedding import (  # noqa: E402
    OnnxSentenceEncoder,
    export_fp32,
    optimise,
    quantise_int8,
)

BATCH = 32
CALIBRATION_CHUNKS = 256
SORTED_SUB_BATCHES = (16, 32)  # torch fp32 in larger batches than the retriever's (32: its default before 8)
SPEED_TARGET, RECALL_TARGET, NDCG_TOLERANCE = 2.0, 0.98, 0.005
Encode = Callable[[list[str]], np.ndarray]


@dataclass
class Variant:
    name: str
    build: Callable[[Path, Path], Path]  # (exported fp32, work dir) -> graph
    threads: int = 0
    shipped: bool = False
    sub_batch: int = 0  # each batch sorted by length in passes of this size (0: one pass)


def _optimised(exported: Path, work: Path) -> Path:
    target = work / "optimised.onnx"
    if not target.exists():
        optimise(exported, target, heads=12, hidden=384)
    return target


def _int8(name: str, source: Callable[[Path, Path], Path], **options) -> Callable[[Path, Path], Path]:  # type: ignore[no-untyped-def]
    def build(exported: Path, work: Path) -> Path:
        target = work / f"{name}.onnx"
        if not target.exists():
            quantise_int8(source(exported, work), target, **options)
        return target
    return build


def _ffn_out_nodes(graph: Path) -> list[str]:
    """The feed-forward output projections (after GELU: the layers with the widest activations)."""
    import onnx

    return [n.name for n in onnx.load(str(graph)).graph.node if n.op_type == "MatMul" and "output/dense" in n.name
            and "attention" not in n.name]


def _int8_keep_ffn_out(exported: Path, work: Path) -> Path:
    target = work / "int8-keep-ffn-out.onnx"
    if not target.exists():
        source = _optimised(exported, work)
        quantise_int8(source, target, exclude=_ffn_out_nodes(source))
    return target


def quantise_static(source: Path, target: Path, batches: Sequence[dict[str, np.ndarray]], *,
                    method: str = "minmax", per_channel: bool = True, reduce_range: bool = False,
                    op_types: Sequence[str] = ("MatMul",), exclude: Sequence[str] = ()) -> None:
    """Static int8 quantisation (QDQ): activation ranges fixed beforehand from `batches` of model inputs."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=list(op_types), nodes_to_exclude=list(exclude),
                    calibrate_method=methods[method],
                    extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


CALIBRATION: list[dict[str, np.ndarray]] = []  # model inputs for static quantisation, filled in main()


def _static(name: str, source: Callable[[Path, Path], Path], **options) -> Callable[[Path, Path], Path]:  # type: ignore[no-untyped-def]
    def build(exported: Path, work: Path) -> Path:
        target = work / f"{name}.onnx"
        if not target.exists():
            quantise_static(source(exported, work), target, CALIBRATION, **options)
        return target
    return build


VARIANTS = (
    Variant("onnx fp32 as exported", lambda exported, work: exported),
    Variant("onnx fp32 optimised, one batch (onnx before)", _optimised),
    Variant("onnx fp32 optimised, 1 thread", _optimised, threads=1),
    Variant("int8 per-tensor, all ops (earlier try)",
            _int8("int8-tensor-all", lambda e, w: e, per_channel=False, op_types=())),
    Variant("int8 per-channel, MatMul, as exported", _int8("int8-ch-mm-raw", lambda e, w: e)),
    Variant("int8 per-channel, MatMul, one batch (onnx-int8 before)", _int8("int8-ch-mm-opt", _optimised)),
    Variant("int8 per-channel, MatMul+Attention, optimised",
            _int8("int8-ch-mm-att", _optimised, op_types=("MatMul", "Attention"))),
    Variant("int8 per-channel, FFN outputs kept fp32", _int8_keep_ffn_out),
    Variant("int8 per-channel, MatMul, optimised, 1 thread", _int8("int8-ch-mm-opt", _optimised), threads=1),
    Variant("int8 per-channel, 7-bit weights (reduce_range)",
            _int8("int8-ch-rr", _optimised, reduce_range=True)),
    Variant("int8 per-tensor, 7-bit weights (reduce_range)",
            _int8("int8-t-rr", _optimised, per_channel=False, reduce_range=True)),
    Variant("uint8 weights (U8U8) per-channel", _int8("u8-ch", _optimised, unsigned_weights=True)),
    Variant("uint8 weights (U8U8) per-tensor", _int8("u8-t", _optimised, per_channel=False, unsigned_weights=True)),
    Variant("onnx fp32, sorted sub-batches of 8 (onnx)", _optimised, sub_batch=8, shipped=True),
    Variant("int8 per-channel, sorted sub-batches of 8 (onnx-int8)", _int8("int8-ch-mm-opt", _optimised),
            sub_batch=8, shipped=True),
    Variant("int8 per-channel, sorted sub-batches of 16", _int8("int8-ch-mm-opt", _optimised), sub_batch=16),
    Variant("static QDQ MinMax, as exported", _static("static-minmax-raw", lambda e, w: e)),
    Variant("static QDQ MinMax, optimised", _static("static-minmax", _optimised)),
    Variant("static QDQ Percentile, optimised", _static("static-pct", _optimised, method="percentile")),
    Variant("static QDQ Entropy, optimised", _static("static-entropy", _optimised, method="entropy")),
    Variant("static QDQ MinMax, optimised, reduce_range", _static("static-minmax-rr", _optimised, reduce_range=True)),
)


def chunk_texts(count: int) -> list[str]:
    policy = ChunkingPolicy(1000, 200, 1500)
    texts: list[str] = []
    for doc in list(scifact_data.load_corpus().values())[:count]:
        texts += [c.text for c in chunk_pages([(0, clean_text(f"{doc.title}\n\n{doc.text}"))], policy)]
    return texts


def calibration_chunks(count: int) -> list[str]:
    """Chunks for static quantisation's activation ranges: abstracts from the corpus's far end (the
    speed chunks are its first 200), none of them the dev queries."""
    policy = ChunkingPolicy(1000, 200, 1500)
    texts: list[str] = []
    for doc in list(scifact_data.load_corpus().values())[-400:]:
        texts += [c.text for c in chunk_pages([(0, clean_text(f"{doc.title}\n\n{doc.text}"))], policy)]
    return texts[:count]


def rate(encode: Encode, texts: list[str]) -> float:
    started = time.perf_counter()
    encode_all(encode, texts)
    return len(texts) / (time.perf_counter() - started)


def encode_all(encode: Encode, texts: list[str]) -> np.ndarray:
    return np.concatenate([encode(texts[i:i + BATCH]) for i in range(0, len(texts), BATCH)])


@dataclass
class Quality:
    recall: float
    cosine: float
    ndcg: float | None


class Reference:
    """torch fp32's vectors of the corpus and the queries, and its neighbours."""

    def __init__(self, encode: Encode, corpus: dict[str, str], queries: dict[str, str], dev: scifact_data.Split,
                 full: bool) -> None:
        self.ids, self.texts = list(corpus), list(corpus.values())
        self.query_ids, self.query_texts = list(queries), list(queries.values())
        self.dev, self.full = dev, full
        self.docs, self.queries = encode_all(encode, self.texts), encode_all(encode, self.query_texts)
        self.top = np.argsort(-(self.queries @ self.docs.T), axis=1)[:, :10]

    def compare(self, encode: Encode) -> Quality:
        docs, queries = encode_all(encode, self.texts), encode_all(encode, self.query_texts)
        top = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, self.top, strict=True)])
        cosine = float(np.mean(np.sum(docs * self.docs, axis=1)))
        return Quality(float(recall), cosine, self.ndcg(docs, queries) if self.full else None)

    def ndcg(self, docs: np.ndarray, queries: np.ndarray) -> float:
        scores = queries @ docs.T
        run: dict[str, dict[str, float]] = {}
        for row, qid in enumerate(self.query_ids):
            if qid in self.dev.qrels:
                best = np.argsort(-scores[row])[:100]
                run[qid] = {self.ids[i]: float(scores[row, i]) for i in best}
        return scifact_data.ndcg_at_10(run, self.dev.qrels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 abstracts, the shipped variants only")
    parser.add_argument("--abstracts", type=int, default=0, help="corpus size (default: all; nDCG only then)")
    parser.add_argument("--queries", type=int, default=0, help="queries for recall (default: train + dev)")
    parser.add_argument("--only", action="append", default=[],
                        help="run only the variants whose name holds this text (repeatable)")
    parser.add_argument("--speed-chunks", type=int, default=0, help="chunks timed per variant (default ~400)")
    args = parser.parse_args()
    documents = list(scifact_data.load_corpus().values())
    documents = documents[:args.abstracts or (1000 if args.quick else len(documents))]
    full = len(documents) == len(scifact_data.load_corpus())
    corpus = {d.doc_id: f"{d.title} {d.text}" for d in documents}
    dev = scifact_data.load_split("dev")
    queries = {**dev.queries, **scifact_data.load_split("train").queries}
    queries = dict(list(queries.items())[:args.queries or len(queries)])
    speed_texts = chunk_texts(200)[:args.speed_chunks or None]
    model = load_sentence_transformer("all-MiniLM-L6-v2", "cpu")
    calibration_texts = calibration_chunks(CALIBRATION_CHUNKS)
    CALIBRATION[:] = [{name: array.astype(np.int64) for name, array in model.tokenizer(
        calibration_texts[i:i + 16], padding=True, truncation=True, max_length=model.max_seq_length,
        return_tensors="np").items()} for i in range(0, len(calibration_texts), 16)]

    def torch_encode(texts: list[str], sub_batch: int = CPU_BATCH_SIZE) -> np.ndarray:
        """As the retriever runs it on CPU: sorted by length, in model passes of `sub_batch` texts."""
        return np.asarray(model.encode(texts, batch_size=sub_batch, normalize_embeddings=True,
                                       convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)

    print(f"load average {os.getloadavg()[0]:.2f}; {len(speed_texts)} chunks for speed, {len(corpus)} abstracts "
          f"and {len(queries)} queries for quality")
    rate(torch_encode, speed_texts[:64])  # warm-up: the first pass after load runs at half speed
    torch_before = rate(torch_encode, speed_texts)
    reference = Reference(torch_encode, corpus, queries, dev, full)
    fp32_ndcg = reference.ndcg(reference.docs, reference.queries) if full else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="onnx-variants-") as work_dir:
        work = Path(work_dir)
        exported = work / "exported.onnx"
        export_fp32(model, exported)
        for variant in VARIANTS:
            if (args.quick and not variant.shipped) or (args.only and not any(o in variant.name for o in args.only)):
                continue
            encoder = OnnxSentenceEncoder(variant.build(exported, work), model, threads=variant.threads)

            def encode(texts: list[str], encoder: OnnxSentenceEncoder = encoder,
                       size: int = variant.sub_batch) -> np.ndarray:
                return encoder.encode(texts, batch_size=size)

            rate(encode, speed_texts[:64])
            speed = rate(encode, speed_texts)
            quality = reference.compare(encode)
            rows.append((variant, speed, quality))
            print(f"  {variant.name}: {speed:.1f} chunks/s, recall@10 {quality.recall:.4f}, "
                  f"cosine {quality.cosine:.4f}", flush=True)
    torch_after = rate(torch_encode, speed_texts)
    torch_sorted = {size: rate(lambda texts, size=size: torch_encode(texts, size), speed_texts)  # type: ignore[misc]
                    for size in SORTED_SUB_BATCHES}
    baseline = (torch_before + torch_after) / 2
    print(f"\nload average {os.getloadavg()[0]:.2f}; torch fp32 {torch_before:.1f} / {torch_after:.1f} chunks/s "
          f"(before / after){f'; dense nDCG@10 dev {fp32_ndcg:.4f}' if fp32_ndcg is not None else ''}\n")
    for size, speed in torch_sorted.items():
        print(f"torch in sorted batches of {size}: {speed:.1f} chunks/s, "
              f"{speed / baseline:.2f}× torch as the retriever runs it (batches of {CPU_BATCH_SIZE})")
    print(f"{'variant':52s} {'chunks/s':>8s} {'× torch':>8s} {'recall@10':>9s} {'cosine':>7s} {'nDCG@10':>8s}")
    for variant, speed, quality in rows:
        ndcg = f"{quality.ndcg:.4f}" if quality.ndcg is not None else "-"
        print(f"{variant.name:52s} {speed:8.1f} {speed / baseline:7.2f}× {quality.recall:9.4f} "
              f"{quality.cosine:7.4f} {ndcg:>8s}")
    print(f"\ntargets (onnx-int8): ≥ {SPEED_TARGET:.0f}× torch fp32, recall@10 ≥ {RECALL_TARGET}, "
          f"nDCG@10 within {NDCG_TOLERANCE} of fp32")


if __name__ == "__main__":
    main()
