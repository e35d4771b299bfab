"""`genai docs upload|ls|rm` and `genai search`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from genai_cli.aio import run
from genai_cli.board import DONE_STYLES, Board
from genai_cli.client import Connection, Gateway
from genai_cli.deletes import delete_each
from genai_cli.errors import CliError
from genai_cli.output import plain, print_json, shorten, stdout_console
from genai_cli.upload import UploadRun, expand_paths

app = typer.Typer(help="Upload, list and delete documents.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
PAGE_LIMIT = 100


@app.command("upload")
def upload(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(help="files, folders (searched for .pdf, .txt, .md) or glob patterns")],
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, max=32, help="uploads at once")] = 4,
    json_out: JsonFlag = False,
) -> None:
    """Upload documents, follow each until indexed or failed; exit status 1 if any failed."""
    files = expand_paths(paths)
    if not files:
        raise CliError("nothing to upload: the folders hold no .pdf, .txt or .md files")
    console = stdout_console()

    async def body() -> list[dict[str, Any]]:
        async with Gateway(ctx.obj) as gateway:
            with Board(console, "documents") as board:
                return await UploadRun(gateway, board, concurrency).run(files)

    results = run(body())
    failed = [r for r in results if r["status"] != "indexed"]
    if json_out:
        print_json(results)
    else:
        console.print(f"{len(results)} file{'s' * (len(results) != 1)}: {len(results) - len(failed)} indexed, "
                      f"{len(failed)} failed")
    if failed:
        raise typer.Exit(1)


@app.command("ls")
def list_documents(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="at most this many, newest first")] = 50,
    json_out: JsonFlag = False,
) -> None:
    """List documents with their status."""
    documents = run(_list(ctx.obj, limit))
    if json_out:
        print_json(documents)
        return
    table = Table()
    table.add_column("id", no_wrap=True, min_width=36)  # complete, for `genai docs rm`
    for name in ("name", "status", "pages", "passages", "reason"):
        table.add_column(name, no_wrap=name in ("status", "progress"))
    for d in documents:
        table.add_row(plain(d["id"]), plain(d["name"]), plain(d["status"], DONE_STYLES.get(d["status"], "cyan")),
                      str(d["pages"] or ""), str(d["chunks"] or ""), plain(d["reason"]))
    stdout_console().print(table)


async def _list(connection: Connection, limit: int) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    after: str | None = None
    async with Gateway(connection) as gateway:
        while len(documents) < limit:
            params: dict[str, Any] = {"limit": min(PAGE_LIMIT, limit - len(documents))}
            if after:
                params["after"] = after
            page = await gateway.call("GET", "/v1/documents", params=params)
            documents.extend(page["data"])
            after = page.get("next_after")
            if not page.get("has_more") or not after:
                break
    return documents


@app.command("rm")
def remove(ctx: typer.Context, ids: Annotated[list[str], typer.Argument(help="document ids")]) -> None:
    """Delete documents (their passages and files too)."""
    failures = run(delete_each(ctx.obj, ids, lambda i: f"/v1/documents/{i}", lambda i, _reply: f"deleted {i}",
                               stdout_console()))
    if failures:
        raise typer.Exit(1)


def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="what to look for in the uploaded documents")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=100)] = 5,
    json_out: JsonFlag = False,
) -> None:
    """Semantic search over the uploaded documents."""

    async def body() -> list[dict[str, Any]]:
        async with Gateway(ctx.obj) as gateway:
            return (await gateway.call("POST", "/v1/search", json={"query": query, "top_k": top_k}))["data"]

    hits = run(body())
    if json_out:
        print_json(hits)
        return
    console = stdout_console()
    if not hits:
        console.print("no matching passages")
    for rank, hit in enumerate(hits, 1):
        where = f"{hit['name']}, page {hit['page']}" if hit.get("page") else hit["name"]
        console.print(plain(f"[{rank}] {where}  (score {hit['score']:.3f})", "bold"))
        console.print(plain(shorten(hit["text"], 400)))
