"""The gateway's FastAPI app: one composition root, resources owned by the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from gateway import chat, documents, jobs
from gateway.auth import ApiKeyAuth
from gateway.db import open_engine, session_factory
from gateway.errors import install_error_handlers
from gateway.middleware import RequestContextMiddleware
from gateway.migrate import ensure_schema
from gateway.progress import ProgressDispatcher, progress_queue
from gateway.settings import GatewaySettings
from genai_common.amqp import Amqp
from genai_common.blobs import open_blob_store

log = logging.getLogger(__name__)

FEATURES = (chat, documents, jobs)
# A probe must answer within its own timeout even when the database hangs.
DATABASE_CHECK_SECONDS = 2.0


async def _open_storage(app: FastAPI, settings: GatewaySettings, stack: AsyncExitStack) -> None:
    await ensure_schema(settings)
    engine = open_engine(settings.database_url)
    stack.push_async_callback(engine.dispose)
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.blobs = open_blob_store(settings.blob_store_url)
    amqp = Amqp(settings.amqp_url)
    await amqp.connect()
    stack.push_async_callback(amqp.close)
    app.state.amqp = amqp
    # Features register their appliers in open_resources; consuming starts once all are in.
    app.state.progress = ProgressDispatcher()


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.settings = settings
            if not settings.gateway_api_keys:
                log.warning("GATEWAY_API_KEYS is unset: the /v1 API accepts requests without a key")
            await _open_storage(app, settings, stack)
            for feature in FEATURES:
                await feature.open_resources(app, settings, stack)
            spec = progress_queue(settings.gateway_progress_retry_attempts,
                                  settings.gateway_progress_retry_budget_seconds)
            await app.state.amqp.consume(spec, app.state.progress.handle)
            stack.push_async_callback(app.state.amqp.stop_consumers, settings.shutdown_grace_seconds)
            yield

    app = FastAPI(title="genai gateway", version="0.1.0", lifespan=lifespan)
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)
    # Every /v1 route of every feature needs a key when GATEWAY_API_KEYS is set.
    require_key = Depends(ApiKeyAuth(settings.gateway_api_keys))
    for feature in FEATURES:
        app.include_router(feature.router, dependencies=[require_key])

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        checks = {"database": await _database_ok(request.app), "broker": request.app.state.amqp.is_connected}
        ready = all(checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                            status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


async def _database_ok(app: FastAPI) -> bool:
    try:
        async with asyncio.timeout(DATABASE_CHECK_SECONDS), app.state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True
    except Exception:
        log.warning("database check failed", exc_info=True)
        return False
