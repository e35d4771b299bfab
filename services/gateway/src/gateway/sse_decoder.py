"""Reading server-sent events: the `data` of each event of a byte stream, as bytes.

Lines end with LF, CRLF or CR; `data:` lines of one event are joined with LF; a blank line ends
the event; `event:`, `id:`, `retry:` and comment lines are skipped (an OpenAI stream carries
everything in `data`). An event is bounded: a stream that never ends a line or an event is an error.
"""

from __future__ import annotations

MAX_EVENT_BYTES = 8 * 1024 * 1024


class EventTooLong(ValueError):
    pass


class SseDecoder:
    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._pending = bytearray()
        self._data: list[bytes] = []
        self._size = 0
        self._max = max_event_bytes

    def feed(self, piece: bytes) -> list[bytes]:
        """The data of the events that `piece` completes (usually one, often none).

        Linear in the bytes fed: a piece that ends no line is appended to the pending line (never
        re-copied), and each byte is split into lines once.
        """
        if b"\n" not in piece and b"\r" not in piece and not self._pending.endswith(b"\r"):
            self._pending += piece
            if len(self._pending) > self._max:
                raise EventTooLong(f"a server-sent event is longer than {self._max} bytes")
            return []
        buffer = bytes(self._pending) + piece if self._pending else piece
        if b"\r" in buffer:
            # A CR at the very end may be the first half of a CRLF: wait for the next piece.
            held = buffer.endswith(b"\r")
            buffer = (buffer[:-1] if held else buffer).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if held:
                buffer += b"\r"
        lines = buffer.split(b"\n")
        self._pending = bytearray(lines.pop())
        if len(self._pending) > self._max:
            raise EventTooLong(f"a server-sent event is longer than {self._max} bytes")
        events: list[bytes] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(self._data[0] if len(self._data) == 1 else b"\n".join(self._data))
                    self._data, self._size = [], 0
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
                self._size += len(value)
                if self._size > self._max:
                    raise EventTooLong(f"a server-sent event is longer than {self._max} bytes")
        return events
