"""Gateway feature: chat (OpenAI-compatible chat completions grounded in scraped pages and documents).

`open_resources` opens one gRPC channel per peer (scraper, retriever) and the LLM client, puts
`app.state.scraper`, `app.state.retriever` (shared with the documents feature) and `app.state.chat`
in place, and closes them through the exit stack.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

import openai
from fastapi import FastAPI

from gateway.chat.context import ContextGatherer, GatherLimits
from gateway.chat.limiter import ConcurrencyLimiter
from gateway.chat.llm import LLM
from gateway.chat.metrics import backend_failed
from gateway.chat.routes import router
from gateway.chat.service import ChatService
from gateway.peers import RetrieverClient, ScraperClient
from gateway.settings import GatewaySettings
from genai_common.grpc_client import open_channel

__all__ = ["open_resources", "router"]

log = logging.getLogger(__name__)


def _open_llm(settings: GatewaySettings, stack: AsyncExitStack) -> LLM | None:
    if not settings.llm_base_url:
        log.warning("LLM_BASE_URL is unset: chat answers in retrieval-only mode")
        return None
    client = openai.AsyncOpenAI(
        base_url=settings.llm_base_url, api_key=settings.llm_api_key.get_secret_value(),
        timeout=settings.llm_timeout_seconds, max_retries=0,
    )
    stack.push_async_callback(client.close)
    return LLM(client, settings.llm_model)


async def open_resources(app: FastAPI, settings: GatewaySettings, stack: AsyncExitStack) -> None:
    """Create this feature's long-lived clients on app.state; close them through `stack`."""
    scraper_channel = open_channel(settings.scraper_addr)
    stack.push_async_callback(scraper_channel.close)
    retriever_channel = open_channel(settings.retriever_addr)
    stack.push_async_callback(retriever_channel.close)
    app.state.scraper = ScraperClient(scraper_channel, settings.scrape_deadline_seconds)
    app.state.retriever = RetrieverClient(retriever_channel, settings.retrieve_deadline_seconds)
    limits = GatherLimits(
        max_urls=settings.max_urls_per_message, max_chars_per_page=settings.scrape_max_chars_per_page,
        scrape_deadline=settings.scrape_deadline_seconds, retrieve_deadline=settings.retrieve_deadline_seconds,
    )
    gatherer = ContextGatherer(app.state.scraper, app.state.retriever, limits, on_failure=backend_failed)
    limiter = ConcurrencyLimiter(settings.llm_max_concurrency, settings.llm_max_queue)
    app.state.chat = ChatService(gatherer, _open_llm(settings, stack), limiter)
