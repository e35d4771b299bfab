"""Server-sent events, one encoding for every stream the gateway sends (chat chunks, job progress)."""

from __future__ import annotations

import json
from typing import Any

MEDIA_TYPE = "text/event-stream"
# No caching, and no buffering by a proxy in between (nginx honours X-Accel-Buffering).
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
KEEPALIVE = b": keepalive\n\n"
# What an OpenAI-style stream ends with.
DONE = b"data: [DONE]\n\n"


def sse_event(data: dict[str, Any], name: str | None = None) -> bytes:
    """One event: an optional `event:` line, then the JSON payload on one `data:` line."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {payload}\n\n".encode()
