"""Typed adapters over the scraper and retriever gRPC stubs.

Every call carries a deadline (the client's default, or one passed per call); a failed call
becomes a `genai_common.errors.ServiceError` (DeadlineExceeded, InvalidInput, NotFound,
Unavailable) through `genai_common.grpc_client.unary`. The request id travels in the metadata: the channel from
`genai_common.grpc_client.open_channel` adds it from the contextvar.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from gateway.peer_models import Passage, ScrapedPage
from genai.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from genai.scraper.v1 import scraper_pb2, scraper_pb2_grpc
from genai_common.errors import InvalidInput
from genai_common.grpc_client import unary

_MODES = {
    None: retriever_pb2.SEARCH_MODE_UNSPECIFIED,
    "dense": retriever_pb2.SEARCH_MODE_DENSE,
    "sparse": retriever_pb2.SEARCH_MODE_SPARSE,
    "hybrid": retriever_pb2.SEARCH_MODE_HYBRID,
}


def _outcome_name(value: int) -> str:
    return scraper_pb2.Outcome.Name(value).removeprefix("OUTCOME_").lower()


def _page_from_pb(page: scraper_pb2.Page) -> ScrapedPage:
    return ScrapedPage(
        url=page.url, final_url=page.final_url, outcome=_outcome_name(page.outcome), reason=page.reason,
        http_status=page.http_status, bytes=page.bytes, elapsed_ms=page.elapsed_ms, title=page.title,
        text=page.text, content_type=page.content_type,
    )


def _passage_from_pb(hit: retriever_pb2.Hit) -> Passage:
    return Passage(
        chunk_id=hit.chunk_id, document_id=hit.document_id, document_name=hit.source_name, page=hit.page,
        chunk_index=hit.chunk_index, text=hit.text, score=hit.score,
    )


class ScraperClient:
    """`genai.scraper.v1.ScraperService` behind one typed method."""

    def __init__(self, channel: grpc.aio.Channel, deadline: float) -> None:
        self._stub = scraper_pb2_grpc.ScraperServiceStub(channel)
        self._deadline = deadline

    async def scrape(self, urls: Sequence[str], *, max_chars_per_page: int = 0,
                     deadline: float | None = None) -> list[ScrapedPage]:
        """One page per URL, in request order; a page that failed says why in `outcome`/`reason`."""
        request = scraper_pb2.ScrapeRequest(urls=list(urls), max_chars_per_page=max_chars_per_page)
        reply = await unary(self._stub.Scrape, request, deadline=deadline or self._deadline, peer="scraper")
        return [_page_from_pb(p) for p in reply.pages]


class RetrieverClient:
    """`genai.retriever.v1.RetrieverService` behind typed methods."""

    def __init__(self, channel: grpc.aio.Channel, deadline: float) -> None:
        self._stub = retriever_pb2_grpc.RetrieverServiceStub(channel)
        self._deadline = deadline

    async def search(self, query: str, *, top_k: int, score_threshold: float | None = None,
                     document_ids: Sequence[str] = (), mode: str | None = None,
                     deadline: float | None = None, tenant: str = "default") -> list[Passage]:
        """Ranked passages of `tenant`'s documents only (the retriever filters on the tenant)."""
        if mode not in _MODES:
            raise InvalidInput(f"unknown search mode {mode!r}; use dense, sparse or hybrid")
        request = retriever_pb2.SearchRequest(
            query=query, top_k=top_k, document_ids=list(document_ids), mode=_MODES[mode], tenant=tenant,
        )
        if score_threshold is not None:
            request.score_threshold = score_threshold
        reply = await unary(self._stub.Search, request, deadline=deadline or self._deadline, peer="retriever")
        return [_passage_from_pb(h) for h in reply.hits]

    async def delete_document(self, document_id: str, *, deadline: float | None = None) -> int:
        """Delete a document's vectors; returns how many were deleted (0 when none existed)."""
        request = retriever_pb2.DeleteDocumentRequest(document_id=document_id)
        reply = await unary(self._stub.DeleteDocument, request, deadline=deadline or self._deadline, peer="retriever")
        return reply.deleted
