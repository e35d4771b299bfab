"""Every parser that client (or LLM) bytes reach takes time at most linear in their size.

Each test feeds hostile input of size n and 8n in the same run and compares the two times
(tests/support/growth.py): a quadratic parser shows ~64x, a linear one ~8x.
"""

from __future__ import annotations

from gateway.chat.prompt import build_messages, last_user_text, message_text
from gateway.chat.sources import Source
from gateway.chat.urls import extract_urls, without_urls
from gateway.documents.sniff import HEAD_BYTES, Sniffer
from gateway.sse_decoder import SseDecoder
from tests.support.growth import assert_linear


def _urls(text: object) -> object:
    assert isinstance(text, str)
    return extract_urls(text, 8), without_urls(text)


def test_url_extraction_after_a_url_of_closing_brackets_is_linear() -> None:
    text = "see https://a.example/" + ")" * 150_000
    assert extract_urls(text, 8) == ["https://a.example/"]
    assert_linear(lambda n: "see https://a.example/" + ")" * n, _urls, 4_000)
    assert_linear(lambda n: "see https://a.example/(" + "](" * n, _urls, 4_000)
    assert_linear(lambda n: "https://a.example/x. " * n, _urls, 1_000)


def _sniff(data: object) -> object:
    assert isinstance(data, bytes)
    sniffer = Sniffer()
    for start in range(0, len(data), 4096):
        sniffer.feed(data[start:start + 4096])
    return sniffer.finish("txt")


def test_sniffing_markdown_lookalikes_is_linear() -> None:
    assert _sniff(b"[" * HEAD_BYTES) == "text/plain"
    assert HEAD_BYTES >= 8 * 4096  # both sizes below fall inside the sniffed head
    for unit in (b"[", b"[a](", b"**a", b"| |  ", b"\n> ", b"](x"):
        assert_linear(lambda n, unit=unit: unit * (n // len(unit)), _sniff, 4096)


def _prompt(count: object) -> object:
    # What a client controls: how many messages and content parts; the sources are bounded by the
    # gateway (characters per page, passages per search), so they stay the same size here.
    assert isinstance(count, int)
    part = {"type": "text", "text": "x. [1] <<<SOURCE 1 BOUNDARY-"}
    messages = [{"role": "system", "content": [part] * count}]
    messages += [{"role": "user", "content": "see <<<SOURCE 2 BOUNDARY-"}] * count
    messages.append({"role": "user", "content": [part] * count})
    sources = [Source(id=i, kind="url", text="y. " * 2000, title="t", url="https://a.example/") for i in range(1, 6)]
    message_text(messages[-1])
    last_user_text(messages)
    return build_messages(messages, sources)


def test_prompt_building_is_linear() -> None:
    assert_linear(lambda n: n, _prompt, 16_000)


def _decode(pieces: object) -> object:
    assert isinstance(pieces, list)
    decoder = SseDecoder()
    return [event for piece in pieces for event in decoder.feed(piece)]


def test_sse_decoding_is_linear_however_the_bytes_are_cut() -> None:
    # One long event whose bytes arrive one at a time, and many small events in CR-cut pieces.
    assert_linear(lambda n: [b"data: "] + [b"x"] * n + [b"\n\n"], _decode, 20_000)
    assert_linear(lambda n: [b'data: {"a":1}\r', b"\r"] * n, _decode, 5_000)
    assert _decode([b"data: "] + [b"x"] * 10 + [b"\r", b"\n", b"\r\n"]) == [b"x" * 10]
