"""The gateway's FastAPI app: the routes of every feature, the probes, and a lifespan that opens
the process's `Resources` (`gateway.wiring`) and closes them at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from gateway.auth import ApiKeyAuth, read_key_file
from gateway.chat.lane import chat_lane
from gateway.chat.routes import router as chat_router
from gateway.console import mount_console
from gateway.deps import ResourcesDep
from gateway.documents.routes import router as documents_router
from gateway.draining import Draining
from gateway.errors import install_error_handlers
from gateway.intake import BodyCaps, Intake
from gateway.jobs.routes import router as jobs_router
from gateway.limits.wiring import open_admission
from gateway.metrics import initialise_http
from gateway.middleware import RequestContextMiddleware
from gateway.settings import GatewaySettings
from gateway.wiring import Resources, open_resources

log = logging.getLogger(__name__)

# A probe must answer within its own timeout even when the database hangs.
DATABASE_CHECK_SECONDS = 2.0

ops = APIRouter(include_in_schema=False)


@ops.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@ops.get("/readyz")
async def readyz(request: Request, resources: ResourcesDep) -> JSONResponse:
    checks = {"database": await _database_ok(resources), "broker": resources.amqp.is_connected,
              "serving": not request.app.state.draining.is_set()}
    ready = all(checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                        status_code=200 if ready else 503)


@ops.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _database_ok(resources: Resources) -> bool:
    try:
        async with asyncio.timeout(DATABASE_CHECK_SECONDS), resources.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True
    except Exception:
        log.warning("database check failed", exc_info=True)
        return False


# An upload's multipart body may exceed its file part by this much (boundaries, part headers, fields).
MULTIPART_OVERHEAD_BYTES = 1024 * 1024


def _auth(settings: GatewaySettings) -> ApiKeyAuth:
    hashed = read_key_file(settings.gateway_api_keys_file) if settings.gateway_api_keys_file else []
    return ApiKeyAuth(settings.gateway_api_keys, hashed)


def _body_caps(settings: GatewaySettings) -> BodyCaps:
    return BodyCaps(json_bytes=settings.gateway_json_max_bytes, chat_bytes=settings.gateway_chat_max_bytes,
                    upload_bytes=settings.upload_max_bytes + MULTIPART_OVERHEAD_BYTES,
                    upload_seconds=settings.gateway_upload_timeout_seconds)


def create_app(settings: GatewaySettings) -> FastAPI:
    auth = _auth(settings)
    admission, close_admission = open_admission(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not auth.enabled:
            log.warning("GATEWAY_API_KEYS is unset: the /v1 API accepts requests without a key")
        draining.bind(asyncio.get_running_loop())
        async with AsyncExitStack() as stack:
            stack.push_async_callback(close_admission)
            app.state.resources = await open_resources(settings, stack)
            yield

    # The gateway's telemetry is Prometheus (/metrics) and JSON logs. FastAPI's native OpenTelemetry
    # would otherwise ask OpenTelemetry's global providers on every request whether it is on.
    app = FastAPI(title="genai gateway", version="0.1.0", lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    draining = app.state.draining = Draining()
    # Every /v1 request: the key (its tenant), the limits and the body cap, before any body is read
    # or any route runs (gateway.intake); inside the request context, so refusals carry the id.
    app.add_middleware(Intake, auth=auth, admission=admission, caps=_body_caps(settings))
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)
    require_key = Depends(auth)  # documents the bearer scheme; the check ran in Intake
    # First of all routes, so ahead of its declared route (which documents it): POST
    # /v1/chat/completions served without FastAPI's per-request work (gateway.chat.lane).
    app.router.routes.insert(0, chat_lane())
    for router in (chat_router, documents_router, jobs_router):
        app.include_router(router, dependencies=[require_key])
    app.include_router(ops)
    mount_console(app)
    api = [(method, route.path) for router in (chat_router, documents_router, jobs_router)
           for route in router.routes if isinstance(route, APIRoute) for method in sorted(route.methods or ())]
    initialise_http([*api, ("GET", "/"), ("GET", "/console")])
    return app
