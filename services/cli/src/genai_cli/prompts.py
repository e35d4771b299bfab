"""Reading a batch of prompts: one a line, or JSONL (a string or an object with "prompt" each line)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genai_cli.errors import CliError


def read_prompts(path: Path) -> list[dict[str, Any]]:
    """One dict per prompt, with at least "prompt"; a JSONL object keeps its other keys (your ids)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: cannot read it as UTF-8 text ({exc})") from None
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if not numbered:
        raise CliError(f"{path}: no prompts in it")
    jsonl = path.suffix.lower() == ".jsonl" or numbered[0][1].lstrip().startswith(("{", '"'))
    return [_json_prompt(path, n, line) if jsonl else {"prompt": line.strip()} for n, line in numbered]


def _json_prompt(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        raise CliError(f"{path}:{number}: not valid JSON") from None
    if isinstance(value, str):
        value = {"prompt": value}
    if not isinstance(value, dict) or not isinstance(value.get("prompt"), str) or not value["prompt"].strip():
        raise CliError(f'{path}:{number}: expected a string or an object with a "prompt" string')
    return value
