"""SciFact (BEIR) loader and nDCG@10 scorer shared by the retrieval benchmarks.

API (all paths default to the shared copy at ../shared/data/scifact beside the checkout, or $SCIFACT_DIR):
    load_corpus(data_dir=None) -> dict[doc_id, Document]      # 5,183 abstracts
    load_split(split, data_dir=None) -> Split                  # split: "train" (809 q) or "dev" (90 q)
        Split.queries: dict[qid, claim text]  (only the queries that have qrels in that split)
        Split.qrels:   dict[qid, dict[doc_id, relevance]]
    ndcg_at_10(run, qrels) -> float   # run: dict[qid, dict[doc_id, score]]; mean over qrels' queries
    reference_scores(data_dir=None) -> dict                    # the published baselines (JSON)
    corpus_fingerprint(data_dir=None) -> str                   # sha256 of the corpus file (cache keys)

`Document.text_for_index` is `title + " " + text`, the string the MTEB/BEIR runs embed.
Only the standard library is used, so any benchmark can import it.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
SPLITS = ("train", "dev")


@dataclass(frozen=True, slots=True)
class Document:
    doc_id: str
    title: str
    text: str

    @property
    def text_for_index(self) -> str:
        return f"{self.title} {self.text}".strip()


@dataclass(frozen=True, slots=True)
class Split:
    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def _dir(data_dir: Path | str | None) -> Path:
    return Path(data_dir or os.environ.get("SCIFACT_DIR") or DEFAULT_DIR)


def load_corpus(data_dir: Path | str | None = None) -> dict[str, Document]:
    corpus: dict[str, Document] = {}
    with gzip.open(_dir(data_dir) / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            corpus[str(row["_id"])] = Document(str(row["_id"]), row.get("title", ""), row.get("text", ""))
    return corpus


def load_qrels(split: str, data_dir: Path | str | None = None) -> dict[str, dict[str, int]]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {SPLITS}")
    qrels: dict[str, dict[str, int]] = {}
    with (_dir(data_dir) / "qrels" / f"{split}.tsv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return qrels


def load_split(split: str, data_dir: Path | str | None = None) -> Split:
    qrels = load_qrels(split, data_dir)
    queries: dict[str, str] = {}
    with (_dir(data_dir) / "queries.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if str(row["_id"]) in qrels:
                queries[str(row["_id"])] = row["text"]
    missing = set(qrels) - set(queries)
    if missing:
        raise ValueError(f"{len(missing)} {split} queries have qrels but no text")
    return Split(split, queries, qrels)


def ndcg_at_10(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> float:
    """Mean nDCG@10 over the queries in `qrels` (a query missing from `run` scores 0).

    Gain = relevance, discount = log2(rank + 1), ties broken by doc id (stable across runs),
    as BEIR/pytrec_eval compute it for binary qrels.
    """
    if not qrels:
        raise ValueError("no qrels")
    total = 0.0
    for qid, relevant in qrels.items():
        ranked = sorted(run.get(qid, {}).items(), key=lambda item: (-item[1], item[0]))[:10]
        dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, (doc, _) in enumerate(ranked))
        ideal = sorted(relevant.values(), reverse=True)[:10]
        idcg = sum(rel / math.log2(rank + 2) for rank, rel in enumerate(ideal))
        total += dcg / idcg if idcg > 0 else 0.0
    return total / len(qrels)


def reference_scores(data_dir: Path | str | None = None) -> dict:
    return json.loads((_dir(data_dir) / "reference-scores.json").read_text(encoding="utf-8"))


def corpus_fingerprint(data_dir: Path | str | None = None) -> str:
    return hashlib.sha256((_dir(data_dir) / "corpus.jsonl.gz").read_bytes()).hexdigest()
