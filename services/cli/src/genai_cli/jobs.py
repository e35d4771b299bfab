"""`genai text` (a batch of text jobs on a live board, results as JSONL) and `genai jobs ls|watch|cancel`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from genai_cli.aio import run
from genai_cli.board import DONE_STYLES, Board
from genai_cli.client import Gateway
from genai_cli.deletes import delete_each
from genai_cli.output import plain, print_json, shorten, stdout_console, to_json
from genai_cli.prompts import read_prompts

app = typer.Typer(help="List, watch and cancel jobs.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
IDS_PER_CALL = 100       # the gateway's limit for GET /v1/jobs?ids=
PROMPTS_PER_CALL = 100   # the gateway's default limit of prompts per batch
POLL_SECONDS = 1.0
FINAL = frozenset(DONE_STYLES) - {"indexed"}


def text(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="one prompt a line, or JSONL")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="results (default: FILE.results.jsonl)")] = None,
    max_tokens: Annotated[int, typer.Option(min=1)] = 256,
    temperature: Annotated[float, typer.Option(min=0, max=2)] = 0.7,
) -> None:
    """Run a batch of text jobs on a live board; write one JSON result a line."""
    inputs = read_prompts(file)
    destination = out or file.with_suffix(".results.jsonl")
    console = stdout_console()

    async def body() -> list[dict[str, Any]]:
        async with Gateway(ctx.obj) as gateway:
            jobs: list[dict[str, Any]] = []
            for start in range(0, len(inputs), PROMPTS_PER_CALL):
                batch = [i["prompt"] for i in inputs[start:start + PROMPTS_PER_CALL]]
                body = {"prompts": batch, "max_tokens": max_tokens, "temperature": temperature}
                reply = await gateway.call("POST", "/v1/jobs/text", json=body)
                jobs.extend(reply["data"])
            pairs = enumerate(zip(jobs, inputs, strict=True), 1)
            labels = {job["id"]: f"{n}. {shorten(given['prompt'], 40)}" for n, (job, given) in pairs}
            return await _watch(gateway, labels, "text jobs", console)

    finals = run(body())
    with destination.open("w", encoding="utf-8") as handle:
        for given, job in zip(inputs, finals, strict=True):
            result = {"job_id": job["id"], "status": job["status"], "output_text": job.get("output_text"),
                      "error": (job.get("error") or {}).get("message")}
            handle.write(to_json({**given, **result}, indent=None) + "\n")
    _summary(finals, console)
    console.print(plain(f"results: {destination}"))
    if any(j["status"] != "succeeded" for j in finals):
        raise typer.Exit(1)


async def _watch(gateway: Gateway, labels: dict[str, str], title: str, console: Console) -> list[dict[str, Any]]:
    """Polls the jobs in batches until every one has ended; returns their final records in order."""
    latest: dict[str, dict[str, Any]] = {}
    with Board(console, title) as board:
        for job_id, label in labels.items():
            board.add(job_id, label, "…")
        active = list(labels)
        while active:
            for start in range(0, len(active), IDS_PER_CALL):
                ids = ",".join(active[start:start + IDS_PER_CALL])
                for job in (await gateway.call("GET", "/v1/jobs", params={"ids": ids}))["data"]:
                    latest[job["id"]] = job
                    error = (job.get("error") or {}).get("message")
                    board.update(job["id"], status=job["status"], progress=job.get("progress"), detail=error)
            active = [i for i in active if latest[i]["status"] not in FINAL]
            if active:
                await asyncio.sleep(POLL_SECONDS)
    return [latest[i] for i in labels]


def _summary(finals: list[dict[str, Any]], console: Console) -> None:
    counts: dict[str, int] = {}
    for job in finals:
        counts[job["status"]] = counts.get(job["status"], 0) + 1
    console.print(f"{len(finals)} jobs: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))


@app.command("ls")
def list_jobs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=100, help="the newest this many")] = 20,
    json_out: JsonFlag = False,
) -> None:
    """List the newest jobs."""

    async def body() -> list[dict[str, Any]]:
        async with Gateway(ctx.obj) as gateway:
            return (await gateway.call("GET", "/v1/jobs", params={"limit": limit}))["data"]

    jobs = run(body())
    if json_out:
        print_json(jobs)
        return
    table = Table()
    table.add_column("id", no_wrap=True, min_width=36)  # complete, for `genai jobs watch|cancel`
    for name in ("kind", "status", "progress", "prompt"):
        table.add_column(name, no_wrap=name in ("status", "progress"))
    for job in jobs:
        params = job.get("params") or {}
        status = plain(job["status"], DONE_STYLES.get(job["status"], "cyan"))
        table.add_row(plain(job["id"]), plain(job["kind"]), status,
                      f"{job.get('progress') or 0}%", plain(shorten(params.get("prompt", ""), 50)))
    stdout_console().print(table)


@app.command("watch")
def watch(ctx: typer.Context, ids: Annotated[list[str], typer.Argument(help="job ids")],
          json_out: JsonFlag = False) -> None:
    """Follow jobs until they end; exit status 1 if any did not succeed."""
    console = stdout_console()

    async def body() -> list[dict[str, Any]]:
        async with Gateway(ctx.obj) as gateway:
            return await _watch(gateway, {i: i for i in dict.fromkeys(ids)}, "jobs", console)

    finals = run(body())
    if json_out:
        print_json(finals)
    else:
        _summary(finals, console)
    if any(j["status"] != "succeeded" for j in finals):
        raise typer.Exit(1)


@app.command("cancel")
def cancel(ctx: typer.Context, ids: Annotated[list[str], typer.Argument(help="job ids")]) -> None:
    """Cancel jobs (a job that already ended keeps its final state)."""
    failures = run(delete_each(ctx.obj, ids, lambda i: f"/v1/jobs/{i}", lambda i, job: f"{i}: {job['status']}",
                               stdout_console()))
    if failures:
        raise typer.Exit(1)
