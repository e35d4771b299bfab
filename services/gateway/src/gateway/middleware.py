"""Pure-ASGI middleware: request id (echoed or created, in every log line), HTTP metrics, and the
500 answer (OpenAI error shape, request id attached) for an error nothing else handled."""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import unexpected_error_response
from gateway.metrics import UNMATCHED, observe_http
from genai_common.logging import new_request_id, request_id_var

log = logging.getLogger(__name__)

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = incoming if _VALID_ID.match(incoming) else new_request_id()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal started_response
            if message["type"] == "http.response.start":
                started_response = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
                # A route's path template; a mounted app's mount point (the console's files); else unmatched.
                route = getattr(scope.get("route"), "path", None) or scope.get("root_path") or UNMATCHED
                observe_http(scope["method"], route, message["status"], time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Here, not in an outer handler, so the log line and the 500 both carry the request id.
            log.exception("unhandled error")
            if not started_response:
                await unexpected_error_response()(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
