"""Writing to the terminal: remote text shown as plain text, JSON for scripts, errors on stderr."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

# C0 controls except tab and newline, DEL and C1 controls: a document or a model's answer must not
# be able to move the cursor, retitle the terminal or hide text with escape sequences.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: object) -> str:
    """Remote text made safe to print: control characters (escape sequences with them) removed."""
    return _CONTROLS.sub("", str(text))


def plain(text: object, style: str = "") -> Text:
    """Remote text as a rich `Text`: never read as markup."""
    return Text(clean(text), style=style)


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def to_json(value: Any, indent: int | None = 2) -> str:
    """JSON for scripts; DEL and C1 controls escaped too (json escapes the C0 ones)."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return re.sub(r"[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", text)


def print_json(value: Any) -> None:
    sys.stdout.write(to_json(value) + "\n")
    sys.stdout.flush()


def error_line(message: str) -> None:
    stderr_console().print(Text.assemble(("error: ", "bold red"), clean(message)))


def shorten(text: object, limit: int) -> str:
    flat = " ".join(clean(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
