"""Running a command's async body from typer's synchronous commands."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from genai_cli.errors import CliError

T = TypeVar("T")


def run(body: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, with a `CliError` raised inside a task group surfaced as itself."""
    try:
        return asyncio.run(body)
    except BaseExceptionGroup as group:
        raise _first_cli_error(group) or group from None


def _first_cli_error(group: BaseExceptionGroup) -> CliError | None:
    for exc in group.exceptions:
        if isinstance(exc, CliError):
            return exc
        if isinstance(exc, BaseExceptionGroup) and (found := _first_cli_error(exc)):
            return found
    return None
