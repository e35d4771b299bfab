"""Main-text extraction quality on the article-extraction benchmark's dev split (54 pages).

Scores with the benchmark's own metric (see the dataset README): \\w+ tokens, multisets of
4-token shingles, per-page normalisation, precision and recall averaged over pages, F1 from
those means, accuracy = exact token-sequence match. First checks the scorer against the
published trafilatura output (must give F1 0.954 / P 0.931 / R 0.978), then scores the
scraper's own extraction function, fed the HTML bytes and the page's ground-truth URL.

    .venv/bin/python bench/extraction_f1.py [--data DIR]

Exits non-zero if the scorer check fails or F1 < 0.95.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import re
import sys
import time
from collections import Counter
from pathlib import Path

from scraper.extract import extract_page

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "article-extraction" / "dev"
TARGET_F1 = 0.95
REFERENCE = {"f1": 0.954, "precision": 0.931, "recall": 0.978}
TOKEN = re.compile(r"\w+", re.UNICODE)


def shingles(text: str) -> tuple[Counter[tuple[str, ...]], list[str]]:
    tokens = TOKEN.findall(text or "")
    if len(tokens) < 4:
        return Counter([tuple(tokens)]), tokens
    return Counter(tuple(tokens[i:i + 4]) for i in range(len(tokens) - 3)), tokens


def score(truth: dict[str, str], predicted: dict[str, str]) -> dict[str, float]:
    precisions, recalls, exact = [], [], 0
    for key, expected in truth.items():
        true_sh, true_tokens = shingles(expected)
        pred_sh, pred_tokens = shingles(predicted.get(key, ""))
        exact += true_tokens == pred_tokens
        tp = sum((true_sh & pred_sh).values())
        fp = sum((pred_sh - true_sh).values())
        fn = sum((true_sh - pred_sh).values())
        if fp == 0 and fn == 0:
            precisions.append(1.0)
            recalls.append(1.0)
            continue
        total = tp + fp + fn
        tp_n, fp_n, fn_n = tp / total, fp / total, fn / total
        if tp_n + fp_n > 0:
            precisions.append(tp_n / (tp_n + fp_n))
        if tp_n + fn_n > 0:
            recalls.append(tp_n / (tp_n + fn_n))
    p = sum(precisions) / len(precisions)
    r = sum(recalls) / len(recalls)
    return {"f1": 2 * p * r / (p + r) if p + r else 0.0, "precision": p, "recall": r, "accuracy": exact / len(truth)}


def row(name: str, s: dict[str, float], extra: str = "") -> str:
    return f"| {name:<40} | {s['f1']:.3f} | {s['precision']:.3f} | {s['recall']:.3f} | {s['accuracy']:.3f} | {extra}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--quick", action="store_true", help="accepted for `make bench` (the split takes seconds)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    ids = (args.data / "ids.txt").read_text().split()
    ground = json.loads((args.data / "ground-truth.json").read_text())
    truth = {i: ground[i]["articleBody"] for i in ids}

    published = json.loads(gzip.decompress((args.data / "reference-outputs/trafilatura.json.gz").read_bytes()))
    reference = score(truth, {i: v["articleBody"] for i, v in published["output"].items()})
    scorer_ok = all(round(reference[k], 3) == v for k, v in REFERENCE.items())

    started = time.perf_counter()
    ours = {}
    for i in ids:
        html = gzip.decompress((args.data / "html" / f"{i}.html.gz").read_bytes())
        ours[i] = extract_page(html, ground[i]["url"], "text/html", None).text
    per_page_ms = (time.perf_counter() - started) / len(ids) * 1000
    mine = score(truth, ours)

    print(f"article-extraction dev split: {len(ids)} pages")
    print("| extractor                                | F1    | P     | R     | acc   |")
    print("| ---------------------------------------- | ----- | ----- | ----- | ----- |")
    print(row(f"trafilatura {published['version']} (published)", reference,
              "scorer check " + ("OK (0.954/0.931/0.978)" if scorer_ok else "FAILED")))
    print(row("scraper.extract.extract_page", mine, f"{per_page_ms:.1f} ms/page"))
    ratio = mine["f1"] / reference["f1"]
    print(f"F1 ratio vs trafilatura reference: {ratio:.3f}  (target F1 >= {TARGET_F1})")
    if not scorer_ok:
        print("FAIL: scorer does not reproduce the published trafilatura numbers")
        return 1
    if mine["f1"] < TARGET_F1:
        print(f"FAIL: F1 {mine['f1']:.3f} < {TARGET_F1}")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
