"""Counting how a scenario's requests were answered: accepted (202, with the new id), refused
(503 with Retry-After), anything else, and unanswered within the client's deadline; and the
slowest answer."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx


@dataclass
class Tally:
    accepted: list[str] = field(default_factory=list)
    refused: int = 0
    other: list[str] = field(default_factory=list)
    unanswered: int = 0
    dropped: int = 0  # the connection died with the process: not acknowledged
    slowest: float = 0.0

    async def send(self, request: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response | None:
        started = time.monotonic()
        try:
            reply = await request()
        except httpx.TimeoutException:
            self.unanswered += 1
            return None
        except httpx.TransportError:
            self.dropped += 1
            return None
        finally:
            self.slowest = max(self.slowest, time.monotonic() - started)
        if reply.status_code == 202:
            self.accepted.append(reply.json()["id"])
        elif reply.status_code == 503 and reply.headers.get("retry-after"):
            self.refused += 1
        else:
            self.other.append(f"{reply.status_code} {reply.text[:120]}")
        return reply

    def summary(self) -> str:
        return (f"202: {len(self.accepted)}, 503+Retry-After: {self.refused}, other: {len(self.other)}, "
                f"unanswered: {self.unanswered}, slowest answer {self.slowest:.1f} s")
