"""Gateway feature: chat (OpenAI-compatible chat completions grounded in scraped pages and documents).

`open_resources` opens one gRPC channel per peer (scraper, retriever) and the LLM client, puts
`app.state.scraper`, `app.state.retriever` (shared with the documents feature), `app.state.llm`
(shared with batch text jobs; None without LLM_BASE_URL) and `app.state.chat`
in place, and closes them through the exit stack.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from fastapi import FastAPI

from gateway.chat.completion import RETRIEVAL_ONLY_PAGE_CHARS
from gateway.chat.context import ContextGatherer, GatherLimits
from gateway.chat.limiter import ConcurrencyLimiter
from gateway.chat.llm import LLM, open_llm
from gateway.chat.metrics import backend_failed
from gateway.chat.routes import router
from gateway.chat.service import ChatService
from gateway.peers import RetrieverClient, ScraperClient
from gateway.settings import GatewaySettings
from genai_common.grpc_client import open_channel

__all__ = ["open_resources", "router"]

log = logging.getLogger(__name__)


def _open_llm(settings: GatewaySettings, stack: AsyncExitStack) -> LLM | None:
    llm = open_llm(settings, stack)
    if llm is None:
        log.warning("LLM_BASE_URL is unset: chat answers in retrieval-only mode")
    return llm


async def open_resources(app: FastAPI, settings: GatewaySettings, stack: AsyncExitStack) -> None:
    """Create this feature's long-lived clients on app.state; close them through `stack`."""
    scraper_channel = open_channel(settings.scraper_addr)
    stack.push_async_callback(scraper_channel.close)
    retriever_channel = open_channel(settings.retriever_addr)
    stack.push_async_callback(retriever_channel.close)
    app.state.scraper = ScraperClient(scraper_channel, settings.scrape_deadline_seconds)
    app.state.retriever = RetrieverClient(retriever_channel, settings.retrieve_deadline_seconds)
    llm = _open_llm(settings, stack)
    app.state.llm = llm  # one LLM client per process: batch text jobs use it too
    # Retrieval-only answers quote the sentences of a page that match the question, wherever they
    # are: they read more of each page than a prompt could hold.
    page_chars = settings.scrape_max_chars_per_page
    if llm is None:
        page_chars = max(page_chars, RETRIEVAL_ONLY_PAGE_CHARS)
    limits = GatherLimits(
        max_urls=settings.max_urls_per_message, max_chars_per_page=page_chars,
        scrape_deadline=settings.scrape_deadline_seconds, retrieve_deadline=settings.retrieve_deadline_seconds,
    )
    gatherer = ContextGatherer(app.state.scraper, app.state.retriever, limits, on_failure=backend_failed)
    limiter = ConcurrencyLimiter(settings.llm_max_concurrency, settings.llm_max_queue)
    app.state.chat = ChatService(gatherer, llm, limiter)
