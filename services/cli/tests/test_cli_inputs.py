"""What the `genai` command reads before it calls the gateway: paths to upload and batch prompts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from genai_cli.errors import CliError, api_error
from genai_cli.output import clean, to_json
from genai_cli.prompts import read_prompts
from genai_cli.sse import parse_sse
from genai_cli.upload import expand_paths


def test_folders_are_searched_for_documents_and_globs_expanded(tmp_path: Path) -> None:
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("a/one.pdf", "a/deep/two.MD", "a/skip.png", "three.txt", "four.txt"):
        (tmp_path / name).write_text("x")
    found = expand_paths([str(tmp_path / "a"), str(tmp_path / "*.txt"), str(tmp_path / "a" / "one.pdf")])
    relative = [p.relative_to(tmp_path).as_posix() for p in found]
    assert relative == ["a/deep/two.MD", "a/one.pdf", "four.txt", "three.txt"]
    with pytest.raises(CliError, match="missing.pdf: no such file or folder"):
        expand_paths([str(tmp_path / "missing.pdf")])


def test_prompts_are_lines_or_jsonl_and_a_bad_line_is_named(tmp_path: Path) -> None:
    lines = tmp_path / "p.txt"
    lines.write_text("first prompt\n\n  second prompt  \n")
    assert read_prompts(lines) == [{"prompt": "first prompt"}, {"prompt": "second prompt"}]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"prompt": "a", "ref": 1}\n"b"\n')
    assert read_prompts(jsonl) == [{"prompt": "a", "ref": 1}, {"prompt": "b"}]
    jsonl.write_text('{"prompt": "a"}\n{"text": "no prompt"}\n')
    with pytest.raises(CliError, match=r"p.jsonl:2: expected a string or an object"):
        read_prompts(jsonl)


def test_server_sent_events_are_parsed_across_fields_and_comments() -> None:
    async def lines():
        for line in [": keepalive", "", "event: progress", 'data: {"a":', "data: 1}", "", "data: [DONE]", ""]:
            yield line

    async def collect():
        return [(e.event, e.data) for e in [e async for e in parse_sse(lines())]]

    assert asyncio.run(collect()) == [("progress", '{"a":\n1}'), ("message", "[DONE]")]


def test_api_errors_read_as_one_line_and_remote_text_cannot_drive_the_terminal() -> None:
    refused = api_error(422, b'{"error": {"message": "size: must be one of 64x64"}}')
    assert refused.message == "422 size: must be one of 64x64"
    assert api_error(502, b"<html>Bad Gateway</html>").message == "502 <html>Bad Gateway</html>"
    assert clean("ok\x1b]0;pwned\x07 \x9b31mred\ttab\nline") == "ok]0;pwned 31mred\ttab\nline"
    assert to_json("a\x9bb") == '"a\\u009bb"'
