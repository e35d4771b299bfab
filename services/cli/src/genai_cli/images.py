"""`genai images`: an image job with a progress bar from its event stream, the PNGs saved to a folder.

Ctrl-C while it runs asks whether to cancel the job (answering no leaves it running).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from genai_cli.aio import run
from genai_cli.client import Connection, Gateway
from genai_cli.errors import CliError
from genai_cli.output import plain, stdout_console

TERMINAL = ("succeeded", "failed", "cancelled")


def images(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="what to draw")],
    n: Annotated[int, typer.Option("-n", min=1, help="how many images")] = 1,
    size: Annotated[str, typer.Option(help="WIDTHxHEIGHT, one of the sizes the gateway allows")] = "512x512",
    steps: Annotated[int | None, typer.Option(min=1, help="denoising steps (default: the gateway's)")] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="seed of the first image (random when absent)")] = None,
    negative: Annotated[str, typer.Option("--negative", help="what to avoid")] = "",
    out: Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="folder for the PNGs")] = Path("."),
) -> None:
    """Generate images; the PNGs are saved to --out as <job id>-<n>.png."""
    console = stdout_console()
    body: dict[str, Any] = {"prompt": prompt, "n": n, "size": size, "negative_prompt": negative}
    body.update({k: v for k, v in {"steps": steps, "seed": seed}.items() if v is not None})
    submitted: dict[str, Any] = {}
    try:
        saved = run(_generate(ctx.obj, body, out, submitted, console))
    except KeyboardInterrupt:
        _interrupted(ctx.obj, submitted.get("id"), console)
        raise typer.Exit(130) from None
    for path in saved:
        console.print(plain(f"saved {path}"))


async def _generate(connection: Connection, body: dict[str, Any], out: Path, submitted: dict[str, Any],
                    console: Console) -> list[Path]:
    async with Gateway(connection) as gateway:
        job = await gateway.call("POST", "/v1/jobs/images", json=body)
        submitted.update(job)
        console.print(plain(f"image job {job['id']}: {body['n']} × {body['size']}"))
        job = await _follow(gateway, job, console)
        if job["status"] != "succeeded":
            reason = (job.get("error") or {}).get("message") or job["status"]
            raise CliError(f"image job {job['id']} {job['status']}: {reason}")
        await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
        saved = []
        for result in job["results"]:
            path = out / f"{job['id']}-{result['index']}.png"
            await asyncio.to_thread(path.write_bytes, await gateway.content(result["url"]))
            saved.append(path)
        return saved


async def _follow(gateway: Gateway, job: dict[str, Any], console: Console) -> dict[str, Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(job["status"], total=100, completed=job.get("progress") or 0)
        async with gateway.events("GET", f"/v1/jobs/{job['id']}/events") as events:
            async for event in events:
                previous, job = job["status"], json.loads(event.data)
                progress.update(task, completed=job.get("progress") or 0, description=job["status"])
                if not console.is_terminal and job["status"] != previous:  # a log gets one line per change
                    console.print(f"{job['status']} {job.get('progress') or 0}%")
                if event.event in TERMINAL:
                    break
    if job["status"] not in TERMINAL:  # the stream ended early (the job was deleted, or the gateway restarted)
        job = await gateway.call("GET", f"/v1/jobs/{job['id']}")
    return job


def _interrupted(connection: Connection, job_id: str | None, console: Console) -> None:
    if job_id is None:
        console.print("\ninterrupted before the job was submitted")
        return
    console.print()
    if _yes(f"Cancel job {job_id}?"):
        job = run(_cancel(connection, job_id))
        console.print(plain(f"job {job_id}: {job['status']}"))
    else:
        console.print(plain(f"job {job_id} keeps running; follow it with: genai jobs watch {job_id}"))


def _yes(question: str) -> bool:
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:  # no answer (end of input, or Ctrl-C again)
        return False


async def _cancel(connection: Connection, job_id: str) -> dict[str, Any]:
    async with Gateway(connection) as gateway:
        return await gateway.call("DELETE", f"/v1/jobs/{job_id}")
