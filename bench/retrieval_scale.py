"""Retrieval at scale: the retriever's gRPC Search over the embedded engine at 10k, 100k (and 1M) chunks.

Synthetic chunks go straight into the retriever's store (vectors given, as Index would write them
after embedding): random 384-d unit vectors, and sparse vectors of 40 distinct terms drawn from a
Zipf distribution over a 30,000-word vocabulary, with BM25 weights, hashed exactly as the
retriever's Bm25Encoder hashes the stems of those words. Queries are 3-6 words of that vocabulary,
embedded by the real MiniLM and BM25-encoded by the real encoder, so every search does the work a
user's does. At each size, once the background index build has settled:

- Search over gRPC (a grpc.aio server in this process, as the service builds it): p50 and p99 per
  mode (dense, sparse, hybrid);
- the baseline, measured in the same run and interleaved query by query: the same Retriever
  called in process (encode + query, no gRPC); the ratio is gRPC p50 / in-process p50;
- hybrid in process as two queries fused in the retriever (RETRIEVER_HYBRID_IN_ENGINE=false);
- insert rate (chunks/s through the store's upsert), resident memory and the shard's disk size.

    .venv/bin/python bench/retrieval_scale.py --quick   # 10k and 100k (make bench)
    .venv/bin/python bench/retrieval_scale.py           # 10k, 100k and 1M

Targets: hybrid p50 at the largest size <= 2x its p50 at 10k; gRPC <= 1.25x in process at 100k
in hybrid, the default mode (sparse skips the embedding, so gRPC's fixed ~1-2 ms weighs more there:
printed, not gated); inserts >= 2,000 chunks/s. Exits 1 if one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import grpc  # noqa: E402

from genai.retriever.v1 import retriever_pb2 as pb  # noqa: E402
from genai.retriever.v1 import retriever_pb2_grpc as pb_grpc  # noqa: E402
from retriever.app import build_config, build_grpc_server, build_sparse_encoder  # noqa: E402
from retriever.domain import ChunkRecord, CollectionIdentity, SearchMode, SparseVector, chunk_point_id  # noqa: E402
from retriever.embedding import SentenceTransformerEmbedder, load_sentence_transformer  # noqa: E402
from retriever.qdrant_edge import EdgeChunkStore  # noqa: E402
from retriever.retrieval import Retriever  # noqa: E402
from retriever.settings import RetrieverSettings  # noqa: E402
from retriever.sparse import Bm25Encoder, term_id  # noqa: E402
from retriever.store import HybridQuery  # noqa: E402

VOCABULARY = 30_000
TERMS_PER_CHUNK = 40
DIM = 384
BATCH = 512  # chunks per upsert, the retriever's Index limit
MODES = {SearchMode.DENSE: pb.SEARCH_MODE_DENSE, SearchMode.SPARSE: pb.SEARCH_MODE_SPARSE,
         SearchMode.HYBRID: pb.SEARCH_MODE_HYBRID}
LETTERS = "bcdfghjklmnpqrstvwxz"


def vocabulary(encoder_terms) -> tuple[list[str], np.ndarray]:  # noqa: ANN001
    """Pronounceable pseudo-words and the term id the encoder gives each (its stem hashed)."""
    words, ids = [], []
    n = 0
    while len(words) < VOCABULARY:
        digits, k = [], n
        for _ in range(4):
            digits.append(LETTERS[k % len(LETTERS)] + "aeiou"[(k // len(LETTERS)) % 5])
            k //= len(LETTERS) * 5
        word = "".join(digits) + "m"
        n += 1
        stems = encoder_terms(word)
        if len(stems) == 1:
            words.append(word)
            ids.append(term_id(stems[0]))
    return words, np.array(ids, dtype=np.int64)


def zipf_ranks(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.minimum(rng.zipf(1.1, size=size) - 1, VOCABULARY - 1)


def synthetic_records(rng: np.random.Generator, term_ids: np.ndarray, start: int, count: int) -> list[ChunkRecord]:
    dense = rng.standard_normal((count, DIM)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    records = []
    for offset in range(count):
        ranks = np.unique(zipf_ranks(rng, TERMS_PER_CHUNK * 3))[:TERMS_PER_CHUNK]
        ids = np.unique(term_ids[ranks])
        tf = rng.integers(1, 4, size=len(ids))
        weights = tf * 2.2 / (tf + 1.2)  # BM25 saturation at average length
        number = start + offset
        document = f"doc{number // 10}"
        records.append(ChunkRecord(
            id=chunk_point_id(document, number % 10), document_id=document, source_name=f"{document}.pdf",
            page=1, chunk_index=number % 10, text=f"synthetic chunk {number}", dense=dense[offset].tolist(),
            sparse=SparseVector(tuple(int(i) for i in ids), tuple(float(w) for w in weights))))
    return records


def queries(rng: np.random.Generator, words: list[str], count: int) -> list[str]:
    return [" ".join(words[int(r)] for r in rng.integers(20, 5_000, size=int(rng.integers(3, 7))))
            for _ in range(count)]


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def disk_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(retriever: Retriever, stub: pb_grpc.RetrieverServiceStub, texts: list[str],
                  ) -> dict[SearchMode, tuple[list[float], list[float]]]:
    """Per mode: gRPC and in-process latencies (seconds), interleaved query by query."""
    results: dict[SearchMode, tuple[list[float], list[float]]] = {}
    for mode, pb_mode in MODES.items():
        remote, local = [], []
        for text in texts:
            started = time.perf_counter()
            await stub.Search(pb.SearchRequest(query=text, top_k=10, mode=pb_mode), timeout=30)
            remote.append(time.perf_counter() - started)
            started = time.perf_counter()
            await retriever.search(text, top_k=10, mode=mode)
            local.append(time.perf_counter() - started)
        results[mode] = (remote, local)
    return results


async def engine_only(store: EdgeChunkStore, embedder: SentenceTransformerEmbedder, sparse: Bm25Encoder,
                      texts: list[str]) -> dict[str, list[float]]:
    """Store calls alone, with the query vectors computed beforehand: how the engine itself scales."""
    dense = (await embedder.embed(texts)).tolist()
    terms = [sparse.encode_query(t) for t in texts]
    calls = {
        "dense": lambda i: store.search_dense(dense[i], limit=10),
        "sparse": lambda i: store.search_sparse(terms[i], limit=10),
        "hybrid": lambda i: store.search_hybrid(HybridQuery(dense[i], terms[i], candidates=100), limit=10),
    }
    timings: dict[str, list[float]] = {}
    for name, call in calls.items():
        for i in range(len(texts)):
            started = time.perf_counter()
            await call(i)
            timings.setdefault(name, []).append(time.perf_counter() - started)
    return timings


async def main(args: argparse.Namespace) -> int:
    sizes = ([int(n) for n in args.sizes.split(",")] if args.sizes
             else [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    rng = np.random.default_rng(7)
    root = Path(tempfile.mkdtemp(prefix="retrieval-scale-"))
    settings = RetrieverSettings(qdrant_path=str(root), qdrant_url=None, retriever_port=0)
    sparse = build_sparse_encoder(settings)
    words, term_ids = vocabulary(sparse.terms)
    model = load_sentence_transformer(settings.embedding_model, "cpu")
    embedder = SentenceTransformerEmbedder(model, model_name=settings.embedding_model, batch_size=32)
    await embedder.warm_up()
    store = EdgeChunkStore(collection="scale", path=str(root), threads=settings.qdrant_edge_threads,
                           optimize_after=settings.qdrant_edge_optimize_after_points)
    await store.open(CollectionIdentity(embedder.model_name, embedder.dimension, sparse.name))
    retriever = Retriever(embedder=embedder, sparse=sparse, store=store, config=build_config(settings))
    server = build_grpc_server(settings, retriever, metric_prefix="retriever_bench")
    await server.start()
    texts = queries(rng, words, args.queries)
    rows = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.RetrieverServiceStub(channel)
            await measure(retriever, stub, texts[:10])  # warm both paths
            stored, insert_seconds = 0, 0.0
            for size in sizes:
                while stored < size:
                    batch = synthetic_records(rng, term_ids, stored, min(BATCH, size - stored))
                    started = time.perf_counter()
                    await store.upsert(batch)
                    insert_seconds += time.perf_counter() - started
                    stored += len(batch)
                started = time.perf_counter()
                await store.settle()
                settle = time.perf_counter() - started
                results = await measure(retriever, stub, texts)
                print(f"{size:>9,} chunks: inserts {stored / insert_seconds:,.0f}/s (cumulative), index build "
                      f"waited {settle:.0f}s, RSS {rss_mib():,.0f} MiB, disk {disk_mib(root):,.0f} MiB", flush=True)
                two_queries = Retriever(embedder=embedder, sparse=sparse, store=store,
                                        config=dataclasses.replace(retriever.config, hybrid_in_engine=False))
                fused_here = []
                for text in texts:
                    started = time.perf_counter()
                    await two_queries.search(text, top_k=10, mode=SearchMode.HYBRID)
                    fused_here.append(time.perf_counter() - started)
                engine = await engine_only(store, embedder, sparse, texts)
                rows.append((size, stored / insert_seconds, settle, rss_mib(), disk_mib(root), results, engine))
                print("    the engine alone (query vectors given): " + ", ".join(
                    f"{name} p50 {percentile(t, .5) * 1e3:.2f} ms p99 {percentile(t, .99) * 1e3:.2f} ms"
                    for name, t in engine.items()), flush=True)
                print(f"    hybrid as two queries fused in the retriever, in process: p50 "
                      f"{percentile(fused_here, .5) * 1e3:.1f} ms p99 {percentile(fused_here, .99) * 1e3:.1f} ms",
                      flush=True)
                for mode, (remote, local) in results.items():
                    print(f"    {mode.value:<6} gRPC p50 {percentile(remote, .5) * 1e3:6.1f} ms "
                          f"p99 {percentile(remote, .99) * 1e3:6.1f} ms | in process p50 "
                          f"{percentile(local, .5) * 1e3:6.1f} ms | ratio "
                          f"{statistics.median(remote) / statistics.median(local):.2f}", flush=True)
    finally:
        await server.stop(1)
        await store.close()
        shutil.rmtree(root, ignore_errors=True)
    return report(rows)


def report(rows: list) -> int:
    first, last = rows[0], rows[-1]
    hybrid_growth = percentile(last[5][SearchMode.HYBRID][0], .5) / percentile(first[5][SearchMode.HYBRID][0], .5)
    engine_growth = percentile(last[6]["hybrid"], .5) / percentile(first[6]["hybrid"], .5)
    at_100k = next((r for r in rows if r[0] == 100_000), last)
    remote, local = at_100k[5][SearchMode.HYBRID]  # the default mode; the others are printed above
    grpc_ratio = statistics.median(remote) / statistics.median(local)
    insert_rate = min(r[1] for r in rows)
    checks = [
        (f"hybrid p50 at {last[0]:,} / at {first[0]:,}: {hybrid_growth:.2f} (<= 2; the engine alone: "
         f"{engine_growth:.2f})", hybrid_growth <= 2),
        (f"gRPC / in process p50 at {at_100k[0]:,} (hybrid): {grpc_ratio:.2f} (<= 1.25)", grpc_ratio <= 1.25),
        (f"inserts: {insert_rate:,.0f} chunks/s (>= 2,000)", insert_rate >= 2000),
    ]
    load = os.getloadavg()
    print(f"machine load (1/5/15 min): {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores")
    for line, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {line}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="stop at 100k chunks")
    parser.add_argument("--sizes", help="comma-separated sizes instead (a smoke run)")
    parser.add_argument("--queries", type=int, default=200, help="queries per mode and size")
    sys.exit(asyncio.run(main(parser.parse_args())))
