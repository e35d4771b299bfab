"""Every PDF of the pdf-robustness dev split through the real upload → ingest path.

Gateway, ingest worker and retriever run as processes (their own RabbitMQ vhost, blobs, SQLite,
Qdrant). Each file is uploaded with `POST /v1/documents`; its record must end `indexed` or
`failed` with a reason within the time budget, and the worker must still be alive at the end.
Outcomes are compared with each file's `expected_class` (poppler's view, manifest.jsonl):
    indexed → text · failed "no extractable text" → no_text · failed "encrypted" → needs_password
    · failed otherwise (malformed, timed out, too large) or refused at upload → unreadable
Baseline, from the same data set: plain pypdf 7.1.0 (baseline-pypdf-7.1.0.dev.jsonl), 73/80.

    .venv/bin/python bench/pdf_robustness.py            # all 80 files
    .venv/bin/python bench/pdf_robustness.py --quick    # every 4th file

Exits 1 if a file has no outcome in time, the worker died, or agreement is below the baseline.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

# bench/ on sys.path (its shared modules) before the imports below, hence their `noqa: E402`.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from _documents_stack import documents_stack  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pdf-robustness"
BUDGET_SECONDS = 300.0


def classify(status_code: int, doc: dict) -> str:
    if status_code != 202:
        return "unreadable"  # refused at upload (e.g. 415: the bytes are not a PDF at all)
    if doc["status"] == "indexed":
        return "text"
    reason = doc["reason"]
    if reason.startswith("no extractable text"):
        return "no_text"
    if reason.startswith("encrypted"):
        return "needs_password"
    return "unreadable"


def baseline_agreement(rows: list[dict]) -> int:
    ids = {r["id"] for r in rows}
    agree = 0
    for line in (DATA / "baseline-pypdf-7.1.0.dev.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["id"] in ids and row["pypdf_nopw"]["class"] == row["expected_class"]:
            agree += 1
    return agree


def run_files(client: httpx.Client, rows: list[dict]) -> dict[str, dict]:
    results: dict[str, dict] = {}
    pending: dict[str, str] = {}
    for row in rows:
        data = (DATA / "dev" / row["file"]).read_bytes()
        started = time.monotonic()
        reply = client.post("/v1/documents", files={"file": (Path(row["file"]).name, data, "application/pdf")})
        results[row["id"]] = {"code": reply.status_code, "started": started, "doc": reply.json()}
        if reply.status_code == 202:
            pending[row["id"]] = reply.json()["id"]
        else:
            results[row["id"]]["seconds"] = 0.0
    deadline = time.monotonic() + BUDGET_SECONDS
    while pending and time.monotonic() < deadline:
        for file_id, doc_id in list(pending.items()):
            doc = client.get(f"/v1/documents/{doc_id}").json()
            if doc["status"] in ("indexed", "failed"):
                results[file_id].update(doc=doc, seconds=time.monotonic() - results[file_id]["started"])
                del pending[file_id]
        time.sleep(0.2)
    for file_id in pending:
        results[file_id]["seconds"] = None
    return results


def report(rows: list[dict], results: dict[str, dict]) -> tuple[int, int]:
    per_class: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    agree, no_outcome = 0, 0
    print(f"{'file':58s} {'expected':15s} {'got':15s} {'s':>6s}  reason")
    for row in rows:
        result = results[row["id"]]
        if result["seconds"] is None:
            no_outcome += 1
            print(f"{row['id'][:58]:58s} {row['expected_class']:15s} {'NO OUTCOME':15s}")
            continue
        got = classify(result["code"], result["doc"])
        ok = got == row["expected_class"]
        agree += ok
        per_class[row["expected_class"]][0] += 1
        per_class[row["expected_class"]][1] += ok
        if not ok:
            reason = result["doc"].get("reason") or result["doc"].get("error", {}).get("message", "")
            print(f"{row['id'][:58]:58s} {row['expected_class']:15s} {got:15s} {result['seconds']:6.1f}  {reason[:70]}")
    print()
    print(f"{'expected class':16s} {'files':>6s} {'agree':>6s}")
    for name, (total, ok) in sorted(per_class.items()):
        print(f"{name:16s} {total:6d} {ok:6d}")
    slowest = max((r["seconds"] for r in results.values() if r["seconds"] is not None), default=0.0)
    print(f"\nslowest file to a recorded outcome: {slowest:.1f} s (budget {BUDGET_SECONDS:.0f} s)")
    return agree, no_outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every 4th file")
    args = parser.parse_args()
    rows = [json.loads(line) for line in (DATA / "dev" / "manifest.jsonl").read_text().splitlines()]
    if args.quick:
        rows = rows[::4]
    with documents_stack(gateway=True) as stack:
        with httpx.Client(base_url=stack.gateway_url, timeout=120) as client:
            results = run_files(client, rows)
        alive = stack.services["ingest"].process.poll() is None
    agree, no_outcome = report(rows, results)
    baseline = baseline_agreement(rows)
    print(f"agreement with expected_class: ingest path {agree}/{len(rows)}, "
          f"plain pypdf baseline {baseline}/{len(rows)}")
    print(f"files without an outcome: {no_outcome}; ingest worker alive at the end: {alive}")
    sys.exit(0 if alive and no_outcome == 0 and agree >= baseline else 1)


if __name__ == "__main__":
    main()
