"""`genai docs rm` and `genai jobs cancel`: one DELETE per id, each reported; a key problem stops all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console

from genai_cli.client import Connection, Gateway
from genai_cli.errors import ApiError
from genai_cli.output import plain


async def delete_each(connection: Connection, ids: list[str], path: Callable[[str], str],
                      done: Callable[[str, dict[str, Any]], str], console: Console) -> int:
    """The number of ids that could not be deleted (unknown, or refused)."""
    failures = 0
    async with Gateway(connection) as gateway:
        for item in ids:
            try:
                console.print(plain(done(item, await gateway.call("DELETE", path(item)))))
            except ApiError as exc:
                if exc.status in (401, 403):  # every other id would fail the same way
                    raise
                failures += 1
                console.print(plain(f"{item}: {exc.message}", "red"))
    return failures
