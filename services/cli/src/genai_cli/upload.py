"""`genai docs upload`: files, folders and globs uploaded by a bounded pool, then followed to the end.

Each document is polled until it is indexed or failed; the poll interval grows with the number of
documents still processing, so a thousand uploads cost the gateway no more than a few requests a second.
"""

from __future__ import annotations

import asyncio
import glob
from pathlib import Path
from typing import Any

from genai_cli.board import Board
from genai_cli.client import Gateway
from genai_cli.errors import ApiError, CliError

FOLDER_SUFFIXES = frozenset({".pdf", ".txt", ".md", ".markdown"})
POLL_SECONDS = 0.5
MAX_POLLS_PER_SECOND = 20.0
FINAL = ("indexed", "failed")


def expand_paths(arguments: list[str]) -> list[Path]:
    """Files as given; folders searched (recursively) for PDF, text and Markdown; globs expanded."""
    found: dict[Path, Path] = {}
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            matches = [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES]
        elif path.is_file():
            matches = [path]
        elif glob.has_magic(argument):
            matches = [Path(p) for p in sorted(glob.glob(argument, recursive=True)) if Path(p).is_file()]
        else:
            raise CliError(f"{argument}: no such file or folder")
        for match in matches:
            found.setdefault(match.resolve(), match)
    return list(found.values())


class UploadRun:
    def __init__(self, gateway: Gateway, board: Board, concurrency: int) -> None:
        self._gateway = gateway
        self._board = board
        self._slots = asyncio.Semaphore(concurrency)
        self._processing = 0
        self.results: dict[str, dict[str, Any]] = {}

    async def run(self, files: list[Path]) -> list[dict[str, Any]]:
        for path in files:
            self._board.add(str(path), str(path), "waiting")
        async with asyncio.TaskGroup() as group:
            for path in files:
                group.create_task(self._one(path))
        return [self.results[str(path)] for path in files]

    async def _one(self, path: Path) -> None:
        key = str(path)
        async with self._slots:
            self._board.update(key, status="uploading")
            try:
                document = await self._gateway.upload(path)
            except ApiError as exc:
                if exc.status in (401, 403):  # every other upload would fail the same way
                    raise
                self._finish(key, {"path": key, "id": None, "status": "failed", "reason": exc.message})
                return
            except OSError as exc:
                unreadable = {"path": key, "id": None, "status": "failed", "reason": f"cannot read: {exc.strerror}"}
                self._finish(key, unreadable)
                return
        self._show(key, document)
        self._processing += 1
        try:
            while document["status"] not in FINAL:
                await asyncio.sleep(max(POLL_SECONDS, self._processing / MAX_POLLS_PER_SECOND))
                document = await self._gateway.call("GET", f"/v1/documents/{document['id']}")
                self._show(key, document)
        finally:
            self._processing -= 1
        self._finish(key, {"path": key, **document})

    def _show(self, key: str, document: dict[str, Any]) -> None:
        if document["status"] not in FINAL:  # the final state is shown by _finish, with its facts
            self._board.update(key, status=document["status"], progress=document.get("progress"),
                               detail=document.get("stage") or "")

    def _finish(self, key: str, result: dict[str, Any]) -> None:
        self.results[key] = result
        if result["status"] == "indexed":
            pages, chunks = result.get("pages") or 0, result.get("chunks") or 0
            detail = (f"{pages} page{'s' * (pages != 1)}, " if pages else "") + f"{chunks} passage{'s' * (chunks != 1)}"
        else:
            detail = result.get("reason") or "failed"
        self._board.update(key, status=result["status"], detail=detail)
