"""Scraper settings: the only place the scraper reads its environment."""

from __future__ import annotations

from pydantic import Field, field_validator

from genai_common.settings import CommaList, CommonSettings

MiB = 1024 * 1024


class ScraperSettings(CommonSettings):
    scraper_host: str = "127.0.0.1"
    scraper_port: int = 50051
    scraper_metrics_port: int = 9101

    # SSRF guard. Private (loopback, RFC 1918, CGNAT, ULA...) addresses are refused unless
    # allowed here; link-local and cloud metadata addresses are refused always.
    scraper_allow_private_networks: bool = False
    scraper_allowed_ports: CommaList[int] = [80, 443]
    # Hosts (`intranet.example`, `*.corp.example`) and networks (`10.1.0.0/16`) let through.
    scraper_allowlist: CommaList[str] = []
    scraper_resolve_timeout_seconds: float = Field(default=3.0, gt=0)

    # Fetching
    scraper_max_concurrency: int = Field(default=128, ge=1)
    scraper_max_urls_per_request: int = Field(default=100, ge=1)
    scraper_request_deadline_seconds: float = Field(default=10.0, gt=0)
    # One URL, redirects and extraction included; also the most one page may spend in an extraction worker.
    scraper_fetch_timeout_seconds: float = Field(default=8.0, gt=0)
    scraper_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    scraper_max_response_bytes: int = Field(default=5 * MiB, ge=1024)
    scraper_max_redirects: int = Field(default=5, ge=0)
    scraper_user_agent: str = "genai-scraper/0.1"

    # Extraction (CPU work in a process pool); 0: one worker per CPU the process may use.
    scraper_extract_workers: int = Field(default=0, ge=0)
    scraper_max_chars_per_page: int = Field(default=20_000, ge=1)
    # Upper bound on what a request may ask for with max_chars_per_page.
    scraper_max_chars_per_page_limit: int = Field(default=200_000, ge=1)


    @field_validator("scraper_allowed_ports")
    @classmethod
    def _check_ports(cls, value: list[int]) -> list[int]:
        for port in value:
            if not 0 < port < 65536:
                raise ValueError(f"port {port} out of range")
        return value

