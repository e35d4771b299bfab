"""In-process fakes of the scraper and retriever gRPC services (real grpc.aio servers on 127.0.0.1).

They speak the real contracts, so the gateway's `peers.py` code path runs unchanged against them.
Each records what it was asked and the x-request-id it received, and can be told to fail
(UNAVAILABLE) or to hang (the caller's deadline must cut it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import grpc

from genai.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from genai.scraper.v1 import scraper_pb2, scraper_pb2_grpc

MAX_QUERY_CHARS = 4000  # the real retriever's limit (retriever.retrieval.RetrieverConfig.max_query_chars)


@dataclass
class Behaviour:
    fail: bool = False
    hang: bool = False
    calls: int = 0
    request_ids: list[str] = field(default_factory=list)


async def _misbehave(behaviour: Behaviour, context: grpc.aio.ServicerContext, release: asyncio.Event) -> None:
    behaviour.calls += 1
    behaviour.request_ids.append(dict(context.invocation_metadata() or ()).get("x-request-id", ""))
    if behaviour.fail:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "fake backend is down")
    if behaviour.hang:
        await release.wait()


class FakeScraper(scraper_pb2_grpc.ScraperServiceServicer):
    """Answers from `pages` (url -> (title, text)); other URLs come back as OUTCOME_HTTP_ERROR 404."""

    def __init__(self, release: asyncio.Event) -> None:
        self.pages: dict[str, tuple[str, str]] = {}
        self.requests: list[list[str]] = []
        self.behaviour = Behaviour()
        self._release = release

    async def Scrape(self, request: scraper_pb2.ScrapeRequest,
                     context: grpc.aio.ServicerContext) -> scraper_pb2.ScrapeResponse:
        self.requests.append(list(request.urls))
        await _misbehave(self.behaviour, context, self._release)
        pages = []
        for url in request.urls:
            if url in self.pages:
                title, text = self.pages[url]
                limit = request.max_chars_per_page or len(text)
                pages.append(scraper_pb2.Page(url=url, final_url=url, outcome=scraper_pb2.OUTCOME_OK, http_status=200,
                                              title=title, text=text[:limit], bytes=len(text)))
            else:
                pages.append(scraper_pb2.Page(url=url, final_url=url, outcome=scraper_pb2.OUTCOME_HTTP_ERROR,
                                              http_status=404, reason="HTTP 404"))
        return scraper_pb2.ScrapeResponse(pages=pages)


class FakeRetriever(retriever_pb2_grpc.RetrieverServiceServicer):
    """Search answers every query with `hits` (cut to top_k); records queries."""

    def __init__(self, release: asyncio.Event) -> None:
        self.hits: list[retriever_pb2.Hit] = []
        self.queries: list[retriever_pb2.SearchRequest] = []
        self.behaviour = Behaviour()
        self._release = release

    def add_hit(self, document_id: str, source_name: str, page: int, text: str, score: float) -> None:
        index = sum(1 for h in self.hits if h.document_id == document_id)
        self.hits.append(retriever_pb2.Hit(chunk_id=f"{document_id}-{index}", document_id=document_id,
                                           source_name=source_name, page=page, chunk_index=index, text=text,
                                           score=score))

    async def Search(self, request: retriever_pb2.SearchRequest,
                     context: grpc.aio.ServicerContext) -> retriever_pb2.SearchResponse:
        self.queries.append(request)
        await _misbehave(self.behaviour, context, self._release)
        if len(request.query) > MAX_QUERY_CHARS:  # as the real retriever refuses it
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"query is longer than {MAX_QUERY_CHARS} characters")
        hits = self.hits[: request.top_k or len(self.hits)]
        return retriever_pb2.SearchResponse(hits=hits, mode=retriever_pb2.SEARCH_MODE_DENSE)


class FakePeers:
    """Both fakes on one grpc.aio server: `async with FakePeers() as peers: peers.address`."""

    def __init__(self) -> None:
        self._release = asyncio.Event()
        self.scraper = FakeScraper(self._release)
        self.retriever = FakeRetriever(self._release)
        self._server = grpc.aio.server()
        scraper_pb2_grpc.add_ScraperServiceServicer_to_server(self.scraper, self._server)
        retriever_pb2_grpc.add_RetrieverServiceServicer_to_server(self.retriever, self._server)
        self.address = ""

    async def __aenter__(self) -> FakePeers:
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        self.address = f"127.0.0.1:{port}"
        return self

    def release(self) -> None:
        """Let every hanging call go on (and answer)."""
        self._release.set()

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        await self._server.stop(0)
