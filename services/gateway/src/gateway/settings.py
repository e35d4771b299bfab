"""Gateway settings: the only place the gateway reads its environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from genai_common.settings import AmqpSettings, BlobSettings, CommaList, CommonSettings


class GatewaySettings(AmqpSettings, BlobSettings, CommonSettings):
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000

    # Peers. A chat reads the first GATEWAY_SCRAPE_MAX_URLS URLs of the user's last message; each
    # page's text is cut to GATEWAY_SCRAPE_MAX_CHARS_PER_PAGE characters before it goes into the
    # prompt. A backend past its deadline is named in `sources_unavailable`.
    scraper_addr: str = "127.0.0.1:50051"
    retriever_addr: str = "127.0.0.1:50052"
    gateway_scrape_deadline_seconds: float = Field(default=8.0, gt=0)
    gateway_scrape_max_urls: int = Field(default=5, ge=0)
    gateway_scrape_max_chars_per_page: int = Field(default=8000, ge=1)
    gateway_retrieve_deadline_seconds: float = Field(default=5.0, gt=0)

    # LLM (OpenAI-compatible, e.g. vLLM). Unset base URL -> retrieval-only answers.
    llm_base_url: str | None = None
    llm_api_key: SecretStr = SecretStr("not-needed")
    llm_model: str | None = None
    llm_timeout_seconds: float = 120.0
    # A kept-alive connection to the LLM is closed after this long and a fresh one opened (the
    # host name resolved again), so replicas behind a Service each get their share of the chats.
    llm_connection_max_age_seconds: float = Field(default=60.0, gt=0)
    # Chats in flight at once with the LLM (sources + LLM; see gateway.chat.limiter).
    llm_max_concurrency: int = Field(default=64, ge=1)
    # Chats waiting for a slot beyond llm_max_concurrency; more than this are refused with 429.
    llm_max_queue: int = Field(default=64, ge=0)
    # Without an LLM: retrieval-only chats in flight at once (sources + quoting); as many again
    # may wait for a slot, more are refused with 429.
    gateway_retrieval_only_max_concurrency: int = Field(default=64, ge=1)

    # Counts of documents and jobs by status (and the age of the oldest unfinished one) for the
    # metrics, read from the database this often by every replica.
    gateway_stats_interval_seconds: float = Field(default=15.0, gt=0)

    # Auth: `tenant:key` entries (a bare key belongs to the tenant `default`); unset -> open, one
    # `default` tenant (warned at start). GATEWAY_API_KEYS_FILE names a file of
    # `tenant:sha256-hex-of-key` lines used as well, so no plain key need be in the environment.
    gateway_api_keys: CommaList[SecretStr] = []
    gateway_api_keys_file: Path | None = None

    # Limits per API key (0 = none), counted in Redis when REDIS_URL is set (every replica shares
    # them), else in this process: requests per minute (a bucket that holds one minute's worth)
    # and chats in flight; event streams open per key (per process).
    redis_url: str | None = None
    gateway_key_requests_per_minute: int = Field(default=6000, ge=0)
    gateway_key_max_chats: int = Field(default=64, ge=0)
    gateway_key_max_streams: int = Field(default=32, ge=0)
    # Process-wide caps (0 = none): event streams open, and other /v1 requests in flight; past
    # them requests are shed at once with 503 + Retry-After instead of slowing every request.
    gateway_max_streams: int = Field(default=512, ge=0)
    gateway_max_in_flight: int = Field(default=1024, ge=0)
    # Request bodies (bytes), refused with 413 before or while they are read: JSON bodies of the
    # /v1 routes, chat bodies (images may come inline), and uploads (the whole multipart body,
    # which must also arrive within GATEWAY_UPLOAD_TIMEOUT_SECONDS, else 408).
    gateway_json_max_bytes: int = Field(default=1024 * 1024, ge=1)
    gateway_chat_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    gateway_upload_timeout_seconds: float = Field(default=300.0, gt=0)

    # Storage (AMQP_URL and BLOB_STORE_URL come from the shared groups in genai_common.settings)
    database_url: str = "sqlite+aiosqlite:///./var/gateway.db"
    # Bring the schema to the newest revision at start (one machine). In a cluster a Job runs
    # `python -m gateway.migrate` once per release and replicas only wait for the schema.
    gateway_migrate_on_start: bool = True
    # How long a request waits for the database (a SQLite write lock, a pooled PostgreSQL
    # connection) before it is answered 503 with Retry-After.
    gateway_database_wait_seconds: float = Field(default=30.0, gt=0)
    # How long a replica that does not migrate waits for the schema before it exits.
    gateway_schema_wait_seconds: float = Field(default=600.0, gt=0)

    # Documents: uploads larger than this are refused with 413 (the file part, in bytes).
    upload_max_bytes: int = 50 * 1024 * 1024

    # Jobs: image generation (imagegen workers) and batch text (the LLM), see gateway.jobs.
    # Sizes a client may ask for, "WIDTHxHEIGHT" (64x64 is for tests and CPU demos).
    jobs_image_sizes: CommaList[str] = ["64x64", "512x512", "768x768", "1024x1024"]
    jobs_max_images: int = 8
    jobs_default_steps: int = 30
    jobs_max_steps: int = 100
    jobs_max_prompt_chars: int = 4000
    jobs_max_text_prompts: int = 100
    jobs_max_text_tokens: int = 4096
    # Prompts containing one of these words or phrases (whole word, any case) are refused with 400.
    jobs_blocked_terms: CommaList[str] = []
    # Batch text jobs answered at once by this gateway process (the consumer's prefetch).
    text_job_concurrency: int = 3
    text_job_queue: str = "gateway.text-jobs"
    # A text job the LLM failed (unavailable, timed out) is retried with back-off; after this many
    # attempts or this long since the first failure it is recorded as failed.
    text_job_retry_attempts: int = Field(default=5, ge=1)
    text_job_retry_budget_seconds: float = Field(default=600.0, gt=0)
    # Text jobs waiting in the queue at most; past it new ones are refused with 503 and Retry-After.
    text_job_queue_max_length: int = Field(default=10000, ge=1)
    # A progress event the gateway could not apply (its database down) is retried with back-off
    # for this long before it is dead-lettered (the records it would have moved stay as they are).
    gateway_progress_retry_attempts: int = Field(default=20, ge=1)
    gateway_progress_retry_budget_seconds: float = Field(default=1800.0, gt=0)
    # The reconciliation sweep (gateway.reconcile), run by every replica this often: dead-lettered
    # progress events applied again; a document or job queued with no update for
    # GATEWAY_SWEEP_QUEUED_SECONDS published again, and failed once it has waited
    # GATEWAY_SWEEP_GIVE_UP_SECONDS since submission; one processing or running with no progress for
    # GATEWAY_SWEEP_RUNNING_SECONDS failed with the reason (longer than a worker's retry budget).
    gateway_sweep_interval_seconds: float = Field(default=60.0, gt=0)
    gateway_sweep_queued_seconds: float = Field(default=900.0, gt=0)
    gateway_sweep_running_seconds: float = Field(default=2400.0, gt=0)
    gateway_sweep_give_up_seconds: float = Field(default=21600.0, gt=0)
    jobs_sse_keepalive_seconds: float = 15.0
    # How often an event stream re-reads its job (another replica may have applied the update).
    jobs_sse_poll_seconds: float = 2.0
