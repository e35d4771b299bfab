"""`genai chat`: the answer streamed as it arrives, then its numbered sources; or a conversation."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from genai_cli.aio import run
from genai_cli.client import Connection, Gateway
from genai_cli.errors import ApiError, CliError
from genai_cli.output import clean, error_line, plain, stdout_console

QUIT_WORDS = frozenset({"exit", "quit", ":q"})


def chat(
    ctx: typer.Context,
    question: Annotated[str | None, typer.Argument(help="ask once; without it, an interactive session")] = None,
    model: Annotated[str | None, typer.Option(help="model id (default: the gateway's)")] = None,
    rag: Annotated[bool, typer.Option(help="search the uploaded documents")] = True,
    scrape: Annotated[bool, typer.Option(help="read the web pages named in the question")] = True,
) -> None:
    """Ask a question, grounded in your documents and the pages it names."""
    console = stdout_console()
    options = {"model": model, "genai": {"rag": rag, "scrape": scrape}}
    if question is not None:
        run(_ask(ctx.obj, [{"role": "user", "content": question}], options, console))
        return
    _conversation(ctx.obj, options, console)


def _conversation(connection: Connection, options: dict[str, Any], console: Console) -> None:
    console.print("Ask anything; 'exit' or Ctrl-D ends the session.")
    messages: list[dict[str, str]] = []
    while True:
        try:
            line = console.input("[bold]you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if line.lower() in QUIT_WORDS:
            return
        if not line:
            continue
        messages.append({"role": "user", "content": line})
        try:
            answer = run(_ask(connection, messages, options, console))
        except KeyboardInterrupt:
            console.print("\n(answer interrupted)")
            messages.pop()
            continue
        except CliError as exc:
            if isinstance(exc, ApiError) and exc.status in (401, 403):
                raise
            error_line(exc.message)  # the session goes on, without this question
            messages.pop()
            continue
        messages.append({"role": "assistant", "content": answer})


async def _ask(connection: Connection, messages: list[dict[str, str]], options: dict[str, Any],
               console: Console) -> str:
    body = {"messages": messages, "stream": True, **{k: v for k, v in options.items() if v is not None}}
    parts: list[str] = []
    final: dict[str, Any] = {}
    async with Gateway(connection) as gateway, gateway.events("POST", "/v1/chat/completions", json=body) as events:
        async for event in events:
            if event.data == "[DONE]":
                break
            chunk = json.loads(event.data)
            if "error" in chunk:
                raise CliError(f"the answer stopped: {chunk['error'].get('message', 'upstream error')}")
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content") or ""
                parts.append(text)
                sys.stdout.write(clean(text))
                sys.stdout.flush()
            if "sources" in chunk:
                final = chunk
    sys.stdout.write("\n")
    _print_sources(final, console)
    return "".join(parts)


def _print_sources(final: dict[str, Any], console: Console) -> None:
    sources = final.get("sources") or []
    if sources:
        console.print("\nSources:", style="bold")
    for source in sources:
        if source.get("kind") == "url":
            line = f"  [{source['id']}] {source.get('title') or source['url']} — {source['url']}"
        else:
            page = f", page {source['page']}" if source.get("page") else ""
            line = f"  [{source['id']}] {source.get('name', 'document')}{page}"
        console.print(plain(line))
    unavailable = final.get("sources_unavailable") or []
    if unavailable:
        console.print(plain(f"(not consulted, unavailable: {', '.join(map(str, unavailable))})", "yellow"))
