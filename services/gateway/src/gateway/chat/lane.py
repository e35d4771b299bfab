"""POST /v1/chat/completions served straight from the app's router, without FastAPI's generic
per-request work.

The route is declared in `gateway.chat.routes` like every other (its OpenAPI entry, its
dependencies, its endpoint function `chat_completions`). FastAPI's handling of a request around
that function (request/response wrapper, exit stacks, telemetry, content-type parsing, body
decoding, dependency solving) cost more CPU per chat than everything the gateway itself does for
one (`bench/gateway_profile.py`); under 64 chats at once that queueing was most of the latency the
gateway added. `ChatLane`, placed ahead of the declared route, serves the same requests with the
same function, doing only what that route needs:

- the API key, the per-key limits and the body cap were checked by `gateway.intake` in front of
  every /v1 route, the lane and the declared route alike (401, 429/503, 413 before any body);
- the body decoded and validated in one pass by the model's compiled validator, straight from
  the bytes; what FastAPI would refuse is refused the same way (`RequestValidationError`: invalid
  JSON 400, a field out of range 422, a body that is missing or not JSON 422);
- the answerer from the app's `Resources`, as the `Chat` dependency gives it.

Errors go to the app's handlers (`gateway.errors`) as from any route.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from gateway.chat.routes import chat_completions
from gateway.chat.schemas import ChatCompletionRequest
from gateway.intake import BodyReplay
from gateway.wiring import Resources

PATH = "/v1/chat/completions"


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


@cache
def _as_fastapi() -> TypeAdapter[ChatCompletionRequest]:
    """How FastAPI validates a body it decoded (python mode, attributes allowed): for the refusals' wording."""
    return TypeAdapter(ChatCompletionRequest)


def parse_chat_request(body: bytes, content_type: str | None) -> ChatCompletionRequest:
    """The validated request, or the RequestValidationError FastAPI would raise for this body."""
    if not body:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    if _is_json(content_type):
        try:
            return ChatCompletionRequest.model_validate_json(body)  # decoded and validated in one pass
        except ValidationError:
            pass  # refused: the errors exactly as FastAPI words them, below (a rare, slower path)
        try:
            value: Any = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestValidationError([{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
                                           "input": {}, "ctx": {"error": exc.msg}}]) from None
    else:
        value = body  # FastAPI validates a body of another type as it is, and refuses it
    try:
        return _as_fastapi().validate_python(value, from_attributes=True)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


class LaneRoute(Route):
    """The lane's route: like a FastAPI route it names itself in the scope (`scope["route"]`), so
    the HTTP metrics label its requests with its path."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match != Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def chat_lane() -> LaneRoute:
    """The route to put ahead of the declared one."""
    return LaneRoute(PATH, ChatLane(), methods=["POST"], include_in_schema=False)


class ChatLane:
    """The ASGI app of POST /v1/chat/completions (see the module doc)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The body gateway.intake read (bounded), taken as it is rather than replayed through `receive`.
        taken = receive.take() if isinstance(receive, BodyReplay) else None
        if taken is not None:
            raw, receive = taken
        request = Request(scope, receive)
        if taken is None:
            raw = await request.body()
        body = parse_chat_request(raw, request.headers.get("content-type"))
        resources: Resources = scope["app"].state.resources
        response = await chat_completions(body, request, resources.chat)
        await response(scope, receive, send)
