"""Fixtures of the gateway's tests. Each test starts the real app through its lifespan (the one
wiring root) with the fixtures of `gateway_chat_fixtures`, `gateway_documents_fixtures` and
`gateway_jobs_fixtures`; `gateway_harness` holds what they share. The broker is the session's
`rabbit_url` (root conftest)."""

from __future__ import annotations

from gateway_chat_fixtures import chat_gateway, chat_server, fake_llm, fake_llm_server, fake_peers
from gateway_documents_fixtures import documents_gateway, fake_index
from gateway_jobs_fixtures import jobs_gateway

__all__ = ["chat_gateway", "chat_server", "documents_gateway", "fake_index", "fake_llm", "fake_llm_server",
           "fake_peers", "jobs_gateway"]
