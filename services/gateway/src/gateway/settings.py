"""Gateway settings: the only place the gateway reads its environment."""

from __future__ import annotations

from pydantic import SecretStr, field_validator
from pydantic_settings import NoDecode
from typing import Annotated

from genai_common.settings import CommonSettings


class GatewaySettings(CommonSettings):
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000

    # Peers
    scraper_addr: str = "127.0.0.1:50051"
    retriever_addr: str = "127.0.0.1:50052"
    scrape_deadline_seconds: float = 8.0
    retrieve_deadline_seconds: float = 5.0
    max_urls_per_message: int = 5

    # LLM (OpenAI-compatible, e.g. vLLM). Unset base URL -> retrieval-only answers.
    llm_base_url: str | None = None
    llm_api_key: SecretStr = SecretStr("not-needed")
    llm_model: str | None = None
    llm_timeout_seconds: float = 120.0
    llm_max_concurrency: int = 64

    # Auth: unset -> open (warned at start).
    gateway_api_keys: Annotated[list[SecretStr], NoDecode] = []

    # Storage and messaging
    database_url: str = "sqlite+aiosqlite:///./var/gateway.db"
    blob_store_url: str = "file://./var/blobs"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"

    @field_validator("gateway_api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [SecretStr(k.strip()) for k in value.split(",") if k.strip()]
        return value
