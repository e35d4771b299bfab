"""Domain types of the scraper: what happened to each URL, with its provenance."""

from __future__ import annotations

import enum
from dataclasses import dataclass

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset({"text/plain"})
SUPPORTED_TYPES = HTML_TYPES | TEXT_TYPES  # anything else is refused as unsupported_type


class Outcome(enum.Enum):
    OK = "ok"
    BLOCKED = "blocked"
    TIMEOUT = "timeout"
    HTTP_ERROR = "http_error"
    TOO_LARGE = "too_large"
    UNSUPPORTED_TYPE = "unsupported_type"
    FETCH_ERROR = "fetch_error"


class BlockReason(enum.Enum):
    """Why the SSRF guard refused a URL (a metric label: a small closed set)."""

    MALFORMED_URL = "malformed_url"
    SCHEME = "scheme"
    CREDENTIALS = "credentials"
    PORT = "port"
    INTERNAL_ADDRESS = "internal_address"  # private, loopback, shared...: allowed only by configuration
    FORBIDDEN_ADDRESS = "forbidden_address"  # metadata, link-local, multicast...: never


class FetchFailed(Exception):
    """A URL could not be fetched; `outcome` classifies why, the message is safe to show;
    `blocked` says why the guard refused it (outcome BLOCKED)."""

    def __init__(self, outcome: Outcome, reason: str, blocked: BlockReason | None = None) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.blocked = blocked


@dataclass
class Trace:
    """What is known about a fetch so far; filled in as it goes, so a timeout keeps it."""

    url: str
    final_url: str = ""
    http_status: int = 0
    content_type: str = ""
    bytes: int = 0


@dataclass(frozen=True)
class Page:
    url: str
    final_url: str
    outcome: Outcome
    reason: str
    http_status: int
    bytes: int
    elapsed_ms: int
    title: str = ""
    text: str = ""
    content_type: str = ""
