"""One mapping from errors to HTTP JSON in the OpenAI error shape; never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from genai_common.errors import Conflict, DeadlineExceeded, InvalidInput, NotFound, ServiceError, Unavailable

log = logging.getLogger(__name__)


class APIError(Exception):
    """An error with an explicit HTTP status and OpenAI-style type/code."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers


_SERVICE_ERRORS: dict[type[ServiceError], tuple[int, str]] = {
    InvalidInput: (400, "invalid_request_error"),
    NotFound: (404, "not_found_error"),
    Conflict: (409, "conflict_error"),
    Unavailable: (503, "service_unavailable"),
    DeadlineExceeded: (504, "timeout_error"),
}

_TYPE_OF_STATUS = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                   405: "invalid_request_error", 413: "invalid_request_error", 415: "invalid_request_error",
                   429: "rate_limit_error"}


def error_body(message: str, type: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(error_body(exc.message, exc.type, exc.code, exc.param), status_code=exc.status, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        status, type_ = next((v for k, v in _SERVICE_ERRORS.items() if isinstance(exc, k)), (500, "api_error"))
        return JSONResponse(error_body(exc.message, type_), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
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

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail), _TYPE_OF_STATUS.get(exc.status_code, "api_error")),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # Only reached for errors outside RequestContextMiddleware, which answers the others itself.
        log.exception("unhandled error")
        return unexpected_error_response()


def unexpected_error_response() -> JSONResponse:
    return JSONResponse(error_body("internal server error", "api_error"), status_code=500)
