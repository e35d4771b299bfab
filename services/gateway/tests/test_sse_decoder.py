"""Reading the LLM's server-sent events: whatever way the bytes are cut, the same events come out."""

from __future__ import annotations

import pytest

from gateway.sse_decoder import EventTooLong, SseDecoder

STREAM = (b': keepalive\r\n\r\ndata: {"a":1}\r\n\r\nevent: message\nid: 7\ndata: {"b":\ndata: 2}\n\n'
          b'data:{"c":3}\r\rdata: [DONE]\n\n')
EVENTS = [b'{"a":1}', b'{"b":\n2}', b'{"c":3}', b"[DONE]"]


def _decode(pieces: list[bytes]) -> list[bytes]:
    decoder = SseDecoder()
    return [event for piece in pieces for event in decoder.feed(piece)]


def test_events_whole_or_cut_anywhere_decode_the_same() -> None:
    assert _decode([STREAM]) == EVENTS
    for cut in range(1, len(STREAM)):  # every split, CRLF pairs cut in two included
        assert _decode([STREAM[:cut], STREAM[cut:]]) == EVENTS, cut
    assert _decode([bytes([b]) for b in STREAM]) == EVENTS


def test_an_event_that_never_ends_is_refused() -> None:
    decoder = SseDecoder(max_event_bytes=1000)
    with pytest.raises(EventTooLong):
        for _ in range(20):
            decoder.feed(b"data: " + b"x" * 100)
    decoder = SseDecoder(max_event_bytes=1000)
    with pytest.raises(EventTooLong):
        for _ in range(20):
            decoder.feed(b"data: " + b"x" * 100 + b"\n")
