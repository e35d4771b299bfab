"""Sources of an answer: scraped pages and retrieved document passages, numbered [1], [2]..."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.peer_models import Passage, ScrapedPage

SNIPPET_CHARS = 240


@dataclass(frozen=True)
class Source:
    id: int
    kind: Literal["url", "document"]
    text: str
    score: float | None = None
    title: str = ""        # url
    url: str = ""          # url
    document_id: str = ""    # document
    document_name: str = ""  # document
    page: int = 0          # document; 0 when the source has no pages

    @property
    def snippet(self) -> str:
        flat = " ".join(self.text.split())
        return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1].rstrip() + "…"

    def to_wire(self) -> dict[str, object]:
        if self.kind == "url":
            return {"id": self.id, "kind": "url", "title": self.title, "url": self.url,
                    "score": self.score, "snippet": self.snippet}
        return {"id": self.id, "kind": "document", "name": self.document_name, "document_id": self.document_id,
                "page": self.page or None, "score": self.score, "snippet": self.snippet}


def assemble_sources(pages: Sequence[ScrapedPage], passages: Sequence[Passage]) -> list[Source]:
    """Pages that were fetched with text first (request order), then passages (rank order).

    A page whose outcome is not ok, or that has no text, is not a source.
    """
    sources: list[Source] = []
    for page in pages:
        if page.ok and page.text.strip():
            sources.append(Source(id=len(sources) + 1, kind="url", text=page.text,
                                  title=page.title or page.final_url or page.url, url=page.final_url or page.url))
    seen: set[str] = set()
    for passage in passages:
        if passage.chunk_id in seen or not passage.text.strip():
            continue
        seen.add(passage.chunk_id)
        sources.append(Source(id=len(sources) + 1, kind="document", text=passage.text, score=passage.score,
                              document_id=passage.document_id, document_name=passage.document_name,
                              page=passage.page))
    return sources
