"""nDCG@10 on BEIR SciFact (dev queries) with the corpus indexed through the REAL ingest path.

Each abstract becomes a text upload ("title\\n\\nabstract"): a blob plus a confirmed
`document.uploaded`, consumed by the real ingest worker (clean → sentence chunks with overlap →
Index in batches) into the real retriever (MiniLM + BM25 + Qdrant local mode on disk). Then every
dev claim is searched in each mode over gRPC; chunk hits map back to their document (best chunk
per document) and are scored with nDCG@10 (bench/scifact_data.py).

Baselines in the table: the published all-MiniLM-L6-v2 whole-abstract score (0.645, full test)
and the local BM25 check on dev (0.650) from reference-scores.json.

    .venv/bin/python bench/scifact_ingest.py                      # whole corpus (5,183 docs)
    .venv/bin/python bench/scifact_ingest.py --quick              # dev-relevant docs + 900 others
    .venv/bin/python bench/scifact_ingest.py --quick --split train --chunk-chars 500   # tune on train

Target: the retriever's default mode ≥ 0.70 on dev; exits 1 if missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

# bench/ on sys.path (its shared modules) before the imports below, hence their `noqa: E402`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import grpc  # noqa: E402
import scifact_data  # noqa: E402
from _documents_stack import Feed, Upload, documents_stack  # noqa: E402

from genai.events.v1 import events_pb2  # noqa: E402
from genai.retriever.v1 import retriever_pb2, retriever_pb2_grpc  # noqa: E402
from ingest.settings import IngestSettings  # noqa: E402

TARGET = 0.70
MODES = {"dense": retriever_pb2.SEARCH_MODE_DENSE, "sparse": retriever_pb2.SEARCH_MODE_SPARSE,
         "hybrid": retriever_pb2.SEARCH_MODE_HYBRID}
TOP_CHUNKS = 100


def select_corpus(quick: bool, others: int, split: scifact_data.Split) -> dict[str, scifact_data.Document]:
    corpus = scifact_data.load_corpus()
    if not quick:
        return corpus
    relevant = {doc for rels in split.qrels.values() for doc in rels}
    chosen = [d for d in corpus if d in relevant] + [d for d in corpus if d not in relevant][:others]
    return {d: corpus[d] for d in chosen}


async def index_corpus(feed: Feed, corpus: dict[str, scifact_data.Document]) -> dict[str, str]:
    """Upload every abstract; returns document id → SciFact id."""
    uploads, ids = [], {}
    for doc in corpus.values():
        document_id = str(uuid.uuid4())
        ids[document_id] = doc.doc_id
        uploads.append(Upload(document_id, doc.doc_id, "text/plain", f"{doc.title}\n\n{doc.text}".encode()))
    await feed.store(uploads)
    started = time.perf_counter()
    await feed.publish(uploads)
    await feed.wait(list(ids), within=6 * 3600, report_every=60)
    failed = [e for e in feed.done.values() if e.state != events_pb2.JOB_STATE_SUCCEEDED]
    if failed:
        raise SystemExit(f"{len(failed)} documents failed to index, e.g. {failed[0].reason}")
    chunks = sum(e.chunks for e in feed.done.values())
    seconds = time.perf_counter() - started
    print(f"indexed {len(uploads)} documents as {chunks} chunks in {seconds:.0f} s ({chunks / seconds:.1f} chunks/s)")
    return ids


async def search_all(address: str, queries: dict[str, str], mode: int,
                     ids: dict[str, str]) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    slots = asyncio.Semaphore(4)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = retriever_pb2_grpc.RetrieverServiceStub(channel)

        async def one(qid: str, text: str) -> None:
            async with slots:
                reply = await stub.Search(retriever_pb2.SearchRequest(query=text, top_k=TOP_CHUNKS, mode=mode),
                                          timeout=60)
            best: dict[str, float] = {}
            for hit in reply.hits:  # best chunk per document
                doc = ids.get(hit.document_id)
                if doc is not None and hit.score > best.get(doc, float("-inf")):
                    best[doc] = hit.score
            run[qid] = best

        await asyncio.gather(*(one(qid, text) for qid, text in queries.items()))
    return run


async def run(args: argparse.Namespace) -> int:
    split = scifact_data.load_split(args.split)
    corpus = select_corpus(args.quick, args.others, split)
    ingest_env = {"INGEST_CHUNK_CHARS": str(args.chunk_chars), "INGEST_CHUNK_OVERLAP_CHARS": str(args.overlap),
                  "INGEST_CHUNK_MAX_CHARS": str(max(args.chunk_chars * 3 // 2, 400))}
    print(f"SciFact: {len(corpus)} documents, {len(split.queries)} {args.split} queries; "
          f"chunks ~{args.chunk_chars} chars, overlap {args.overlap}")
    with documents_stack(ingest_env=ingest_env) as stack:
        async with Feed(stack) as feed:
            ids = await index_corpus(feed, corpus)
        scores = {}
        for name, mode in MODES.items():
            scores[name] = scifact_data.ndcg_at_10(await search_all(stack.retriever_addr, split.queries, mode, ids),
                                                   split.qrels)
    default = os.environ.get("RETRIEVER_SEARCH_MODE", "hybrid")
    reference = scifact_data.reference_scores()
    bm25_dev = reference["local_check_dev_split"]["bm25s-0.3.16 (k1=1.5,b=0.75, en stopwords, stemmer=None)"]["dev"]
    minilm = reference["published_full_test"]["all-MiniLM-L6-v2 (MTEB paper run, mteb 0.0.2)"]
    print()
    print(f"{'system':58s} {'nDCG@10':>8s}")
    print(f"{'all-MiniLM-L6-v2, whole abstracts (published, full test)':58s} {minilm['ndcg@10']:8.3f}")
    print(f"{'BM25 bm25s (reference, dev)':58s} {bm25_dev['ndcg@10']:8.3f}")
    for name, score in scores.items():
        label = f"ingest path → retriever, mode={name}" + (" (default)" if name == default else "")
        print(f"{label:58s} {score:8.3f}")
    ratio = scores[default] / minilm["ndcg@10"]
    print(f"\ndefault mode {default}: {scores[default]:.3f} = {ratio:.2f}x the MiniLM baseline (target ≥ {TARGET})")
    if args.quick:
        print("(--quick indexes a subset of the corpus: scores are higher than on the whole corpus)")
    return 0 if scores[default] >= TARGET else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="index the split's relevant documents + --others more")
    parser.add_argument("--others", type=int, default=900)
    parser.add_argument("--split", choices=("dev", "train"), default="dev",
                        help="queries to score (tune chunking on train, report dev)")
    defaults = IngestSettings()
    parser.add_argument("--chunk-chars", type=int, default=defaults.ingest_chunk_chars)
    parser.add_argument("--overlap", type=int, default=defaults.ingest_chunk_overlap_chars)
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
