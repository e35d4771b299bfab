"""A live board of items moving through states (uploads, documents, jobs).

On a terminal it is a table redrawn in place: one row per item with its status, a progress bar
and the time since it started. Anywhere else (a pipe, a log, CI) it prints one line each time an
item changes status, so the output still tells the story.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from genai_cli.output import clean, plain

DONE_STYLES = {"indexed": "green", "succeeded": "green", "failed": "red", "not_found": "red", "cancelled": "yellow"}


@dataclass
class Row:
    label: str
    status: str
    progress: int | None = None
    detail: str = ""
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None

    @property
    def done(self) -> bool:
        return self.status in DONE_STYLES

    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started


class Board:
    def __init__(self, console: Console, title: str) -> None:
        self._console = console
        self._title = title
        self._rows: dict[str, Row] = {}
        self._live: Live | None = None

    def add(self, key: str, label: str, status: str) -> None:
        self._rows[key] = Row(clean(label), status)
        self._announce(self._rows[key])

    def update(self, key: str, status: str | None = None, progress: int | None = None,
               detail: str | None = None) -> None:
        row = self._rows[key]
        if row.done:  # a final state stays final
            return
        changed = status is not None and status != row.status
        row.status = status or row.status
        row.progress = progress if progress is not None else row.progress
        row.detail = clean(detail) if detail is not None else row.detail
        if row.done:
            row.ended = time.monotonic()
            row.progress = 100 if row.status in ("indexed", "succeeded") else row.progress
        if changed:
            self._announce(row)

    def rows(self) -> dict[str, Row]:
        return self._rows

    def counts(self) -> Counter[str]:
        return Counter(row.status for row in self._rows.values())

    def __enter__(self) -> Board:
        if self._console.is_terminal:
            self._live = Live(console=self._console, refresh_per_second=4, get_renderable=self._table)
            self._live.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _announce(self, row: Row) -> None:
        if self._live is None:
            line = Text.assemble(plain(row.label), "  ", (row.status, DONE_STYLES.get(row.status, "cyan")))
            if row.detail and row.done:
                line.append(f"  {row.detail}")
            self._console.print(line)

    def _table(self) -> Table:
        table = Table(title=self._title, title_justify="left", expand=False)
        for name in ("", "status", "progress", "elapsed", ""):
            table.add_column(name, overflow="fold")
        for row in self._rows.values():
            bar = (ProgressBar(total=100, completed=row.progress or 0, width=20) if row.progress is not None
                   else Text(""))
            table.add_row(plain(row.label), Text(row.status, DONE_STYLES.get(row.status, "cyan")), bar,
                          f"{row.elapsed():.0f}s", plain(row.detail))
        return table
