"""The `genai` command: where the gateway is, which key to send, and the subcommands."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from genai_cli import docs, jobs
from genai_cli.chat import chat
from genai_cli.client import DEFAULT_URL, Connection
from genai_cli.errors import CliError
from genai_cli.images import images
from genai_cli.output import error_line


def connect(
    ctx: typer.Context,
    url: Annotated[str, typer.Option("--url", envvar="GENAI_URL", help="the gateway")] = DEFAULT_URL,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="GENAI_API_KEY", show_default=False,
                                                help="sent as Authorization: Bearer <key>")] = None,
) -> None:
    ctx.obj = Connection(url, api_key or None)


def build_app() -> typer.Typer:
    app = typer.Typer(name="genai", help="Documents, grounded chat, image and text jobs on a genai gateway.",
                      no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    app.callback()(connect)
    app.add_typer(docs.app, name="docs")
    app.add_typer(jobs.app, name="jobs")
    app.command("search")(docs.search)
    app.command("chat")(chat)
    app.command("images")(images)
    app.command("text")(jobs.text)
    return app


def main() -> None:
    try:
        build_app()()
    except CliError as exc:
        error_line(exc.message)
        sys.exit(exc.exit_code)
