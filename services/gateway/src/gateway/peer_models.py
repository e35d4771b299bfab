"""Domain values exchanged with the scraper and retriever (no grpc here: `peers.py` translates)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScrapedPage:
    url: str
    final_url: str
    # "ok", "blocked", "timeout", "http_error", "too_large", "unsupported_type", "fetch_error".
    outcome: str
    reason: str
    http_status: int
    bytes: int
    elapsed_ms: int
    title: str
    text: str
    content_type: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass(frozen=True)
class Passage:
    chunk_id: str
    document_id: str
    # The document's name as the index holds it (its file name at upload).
    document_name: str
    page: int  # 1-based; 0 when the source has no pages
    chunk_index: int
    text: str
    score: float
