"""Server-sent events, one encoding for every stream the gateway sends (chat chunks, job progress)."""

from __future__ import annotations

from typing import Any

import orjson

MEDIA_TYPE = "text/event-stream"
# No caching, and no buffering by a proxy in between (nginx honours X-Accel-Buffering).
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
KEEPALIVE = b": keepalive\n\n"
# What an OpenAI-style stream ends with.
DONE = b"data: [DONE]\n\n"


def sse_event(data: dict[str, Any] | bytes, name: str | None = None) -> bytes:
    """One event: an optional `event:` line, then the JSON payload on one `data:` line. `data` is an
    object, or the JSON text of one already encoded (on one line)."""
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    head = b"event: %s\n" % name.encode() if name else b""
    return b"%sdata: %s\n\n" % (head, payload)
