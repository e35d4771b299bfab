"""One mapping from errors to HTTP JSON in the OpenAI error shape; never a stack trace.

Code below the routes raises the shared `genai_common.errors` classes: the class decides the
status and the OpenAI `type`, the error's `code` and `param` go into the body as they are, and a
`retry_after` (RateLimited, Unavailable) becomes a `Retry-After` header. Routes catch nothing to
translate it, so an error a route did not expect still gets its own status, never a 500.

| class | status | type |
| --- | --- | --- |
| InvalidInput | 400 | invalid_request_error |
| PayloadTooLarge | 413 | invalid_request_error |
| UnsupportedMediaType | 415 | invalid_request_error |
| ValidationFailed | 422 | invalid_request_error |
| RequestTimeout | 408 | invalid_request_error |
| Unauthenticated | 401 (+ WWW-Authenticate) | authentication_error |
| NotFound | 404 | not_found_error |
| Conflict | 409 | conflict_error |
| RateLimited (Saturated too) | 429 + Retry-After (+ retry-after-ms) | rate_limit_error |
| UpstreamError | 502 | api_error |
| Unavailable | 503 (+ Retry-After, retry-after-ms when known) | service_unavailable |
| DeadlineExceeded | 504 | timeout_error |

The database failing to answer (refused or dropped connections, SQLite locked, the pool
exhausted) is an outage, not a bug: 503 with `Retry-After` (DATABASE_RETRY_AFTER_SECONDS), so
a client retries an upload or a job submission later instead of giving up on a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from genai_common.errors import (
    Conflict,
    DeadlineExceeded,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    ServiceError,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
    UpstreamError,
    ValidationFailed,
    retry_after_header,
)

log = logging.getLogger(__name__)

# Looked up along the error's class hierarchy: the most specific class listed wins.
_HTTP: dict[type[ServiceError], tuple[int, str]] = {
    InvalidInput: (400, "invalid_request_error"),
    PayloadTooLarge: (413, "invalid_request_error"),
    UnsupportedMediaType: (415, "invalid_request_error"),
    ValidationFailed: (422, "invalid_request_error"),
    RequestTimeout: (408, "invalid_request_error"),
    Unauthenticated: (401, "authentication_error"),
    NotFound: (404, "not_found_error"),
    Conflict: (409, "conflict_error"),
    RateLimited: (429, "rate_limit_error"),
    UpstreamError: (502, "api_error"),
    Unavailable: (503, "service_unavailable"),
    DeadlineExceeded: (504, "timeout_error"),
}

_TYPE_OF_STATUS = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                   405: "invalid_request_error", 413: "invalid_request_error", 415: "invalid_request_error",
                   429: "rate_limit_error"}

# Errors that mean the database is unreachable or busy for now (not a bad query).
DATABASE_OUTAGE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout, ConnectionError)
# SQLSTATE classes (and codes) of a database that refuses or dropped us: connection exception,
# operator intervention (shut down, cannot connect now), insufficient resources, and "not accepting
# connections" (a database being failed over or closed to connections).
_OUTAGE_SQLSTATE_CLASSES = ("08", "53", "57")
_OUTAGE_SQLSTATES = ("55000",)
DATABASE_RETRY_AFTER_SECONDS = 5.0


def is_database_outage(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be reached now (not that a query is wrong)."""
    if isinstance(exc, DATABASE_OUTAGE):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
    return sqlstate[:2] in _OUTAGE_SQLSTATE_CLASSES or sqlstate in _OUTAGE_SQLSTATES

# Not a status anyone reads (the client is gone): it labels the request in logs and metrics.
CLIENT_CLOSED_REQUEST = 499


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


def error_body(message: str, type: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def http_status(exc: ServiceError) -> tuple[int, str]:
    """(status, OpenAI error type) of a service error."""
    for cls in type(exc).__mro__:
        if cls in _HTTP:
            return _HTTP[cls]
    return 500, "api_error"


def service_error_body(exc: ServiceError) -> dict[str, Any]:
    return error_body(exc.message, http_status(exc)[1], exc.code, exc.param)


def _headers(exc: ServiceError) -> dict[str, str] | None:
    if isinstance(exc, Unauthenticated):
        return {"WWW-Authenticate": "Bearer"}
    retry_after = exc.retry_after if isinstance(exc, (RateLimited, Unavailable)) else None
    if retry_after is not None:
        # Whole seconds as HTTP says, and the exact wait in milliseconds as OpenAI's clients read it.
        return {"Retry-After": retry_after_header(retry_after),
                "retry-after-ms": str(max(1, round(retry_after * 1000)))}
    return None


def service_error_response(exc: ServiceError) -> JSONResponse:
    return JSONResponse(service_error_body(exc), status_code=http_status(exc)[0], headers=_headers(exc))


def database_unavailable() -> Unavailable:
    return Unavailable("the database is unavailable; retry later", retry_after=DATABASE_RETRY_AFTER_SECONDS,
                       code="database_unavailable")


def unexpected_error_response() -> JSONResponse:
    return JSONResponse(error_body("internal server error", "api_error"), status_code=500)


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":  # the position of the syntax error is no parameter
        return JSONResponse(error_body("the request body is not valid JSON", "invalid_request_error",
                                       "invalid_json"), status_code=400)
    loc = [str(p) for p in first.get("loc", ())]
    # Drop only the leading location ("body", "query", ...): a field may itself be named "query".
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    param = ".".join(loc) or None
    message = f"{param}: {first.get('msg', 'invalid')}" if param else str(first.get("msg", "invalid request"))
    return JSONResponse(error_body(message, "invalid_request_error", "validation_error", param), status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        return service_error_response(exc)

    async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
        if not is_database_outage(exc):
            log.error("database error", exc_info=exc)
            return unexpected_error_response()
        log.warning("database unavailable: %s", type(exc).__name__)
        return service_error_response(database_unavailable())

    for error in (DBAPIError, PoolTimeout, ConnectionError):
        app.add_exception_handler(error, _database_error)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc)

    @app.exception_handler(ClientDisconnect)
    async def _client_disconnect(_request: Request, _exc: ClientDisconnect) -> JSONResponse:
        return JSONResponse(error_body("the client disconnected before its request body arrived",
                                       "invalid_request_error", "client_disconnected"), status_code=400)

    @app.exception_handler(ClientGone)
    async def _client_gone(_request: Request, _exc: ClientGone) -> JSONResponse:
        return JSONResponse(error_body("client closed the request", "api_error"), status_code=CLIENT_CLOSED_REQUEST)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail), _TYPE_OF_STATUS.get(exc.status_code, "api_error")),
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        # Only reached for errors outside RequestContextMiddleware, which answers the others itself.
        log.exception("unhandled error")
        return unexpected_error_response()
