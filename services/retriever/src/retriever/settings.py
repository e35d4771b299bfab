"""Retriever settings: the only place the retriever reads its environment (field name = env var)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from genai_common.settings import CommonSettings


class RetrieverSettings(CommonSettings):
    retriever_host: str = "127.0.0.1"
    retriever_port: int = 50052
    retriever_metrics_port: int = 9102

    # Embedding model: the bundled all-MiniLM-L6-v2, or any sentence-transformers name or path.
    embedding_model: str = "all-MiniLM-L6-v2"
    # unset: cuda (fp16) when a GPU is visible, else cpu.
    embedding_device: str | None = None
    # Texts per model pass; unset: 8 on CPU (measured faster than 16 or 32 on the same sorted
    # chunks: less padding, activations that stay in cache; and a search waits behind one short
    # pass at most), 64 on a GPU.
    embedding_batch_size: int | None = Field(None, ge=1, le=1024)
    # Encodes running at once; unset: 1 on CPU (torch uses every core already), 2 on a GPU.
    embedding_concurrency: int | None = Field(None, ge=1, le=64)
    # What runs the model: `torch`, or ONNX Runtime on the CPU (`onnx`: fp32; `onnx-int8`: int8
    # weights), exported here from the loaded model at the first start (bench/embedding_backends.py).
    embedding_backend: Literal["torch", "onnx", "onnx-int8"] = "torch"
    # Where the ONNX backends keep the graphs they export (one file per model and backend, reused).
    embedding_cache_dir: str = "./var/models"

    # Vector store: a Qdrant server when QDRANT_URL is set, else the Qdrant engine embedded in this
    # process (Qdrant Edge) with its shard under QDRANT_PATH (":memory:": a throwaway shard, removed at exit).
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    qdrant_path: str = "./var/qdrant"
    qdrant_collection: str = "genai_chunks"
    qdrant_timeout_seconds: float = Field(30.0, gt=0)
    # How often the collection's size is counted for the metrics (a count query on the store).
    retriever_stats_interval_seconds: float = Field(30.0, gt=0)
    # Layout of a collection this retriever creates on a Qdrant server (distributed mode: shards
    # spread over the nodes, each held by replication_factor nodes). Local mode has one shard.
    qdrant_shard_number: int = Field(1, ge=1)
    qdrant_replication_factor: int = Field(1, ge=1)
    # The embedded engine: threads running its (blocking) calls, and how many new points make a
    # child process build the HNSW index on a copy of the shard, swapped in when done (0 = never:
    # points are searched exactly, in Rust). See retriever.qdrant_edge.
    qdrant_edge_threads: int = Field(4, ge=1, le=64)
    qdrant_edge_optimize_after_points: int = Field(20_000, ge=0)

    # Search. Hybrid measured best on SciFact (bench/retrieval_modes.py).
    retriever_search_mode: Literal["dense", "sparse", "hybrid"] = "hybrid"
    retriever_default_top_k: int = Field(5, ge=1)
    retriever_max_top_k: int = Field(100, ge=1, le=1000)
    retriever_max_chunks_per_request: int = Field(512, ge=1)
    # Hybrid fusion: "dbsf" (score distributions, weighted) or "rrf" (reciprocal ranks, uses rrf_k).
    retriever_hybrid_fusion: Literal["dbsf", "rrf"] = "dbsf"
    retriever_dense_weight: float = Field(1.0, ge=0)
    retriever_sparse_weight: float = Field(1.0, ge=0)
    retriever_rrf_k: float = Field(60.0, ge=0)
    retriever_hybrid_candidates: int = Field(100, ge=1, le=1000)
    # Hybrid fused by the vector store in one query (prefetch + fusion) instead of two queries fused
    # in the retriever: the same nDCG@10 on SciFact with dbsf (bench/retrieval_modes.py), one store call.
    retriever_hybrid_in_engine: bool = True

    # BM25 term weights for the sparse vectors (avg_len: the typical chunk length in terms).
    retriever_bm25_k1: float = Field(1.2, ge=0)
    retriever_bm25_b: float = Field(0.75, ge=0, le=1)
    retriever_bm25_avg_len: float = Field(100.0, gt=0)
    retriever_stemmer: Literal["english", "none"] = "english"

    @model_validator(mode="after")
    def _onnx_runs_on_the_cpu(self) -> RetrieverSettings:
        if self.embedding_backend != "torch" and self.embedding_device not in (None, "cpu"):
            raise ValueError(f"EMBEDDING_BACKEND={self.embedding_backend} runs on the CPU: unset EMBEDDING_DEVICE "
                             "or use EMBEDDING_BACKEND=torch")
        return self
