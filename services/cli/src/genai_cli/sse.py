"""Server-sent events, parsed line by line from a streamed HTTP body."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str


async def parse_sse(lines: AsyncIterable[str]) -> AsyncIterator[SseEvent]:
    """Events as the `text/event-stream` format defines them: fields until a blank line; comments skipped."""
    event, data = "", list[str]()
    async for line in lines:
        if not line:
            if data:
                yield SseEvent(event or "message", "\n".join(data))
            event, data = "", list[str]()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        yield SseEvent(event or "message", "\n".join(data))
