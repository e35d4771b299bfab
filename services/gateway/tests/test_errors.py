"""Errors are mapped to HTTP once (`gateway.errors`): whatever route a shared error class comes
out of, the client gets its status, the OpenAI error shape with its code and param, and a
Retry-After where the error knows one; never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.chat.answering import ChatAnswerer
from gateway.documents.library import DocumentLibrary
from gateway.errors import http_status
from gateway.jobs.board import JobBoard
from genai_common import errors

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

# (what a route's collaborator raises, status, OpenAI type, headers the answer must carry)
CASES = [
    (errors.PayloadTooLarge("too big", code="file_too_large", param="file"), 413, "invalid_request_error", {}),
    (errors.UnsupportedMediaType("not a PDF", code="unsupported_media_type", param="file"), 415,
     "invalid_request_error", {}),
    (errors.ValidationFailed("n: too many", code="validation_error", param="n"), 422, "invalid_request_error", {}),
    (errors.InvalidInput("bad", code="bad_thing", param="x"), 400, "invalid_request_error", {}),
    (errors.Unauthenticated("who are you", code="invalid_api_key"), 401, "authentication_error",
     {"www-authenticate": "Bearer"}),
    (errors.NotFound("gone", code="not_found"), 404, "not_found_error", {}),
    (errors.Conflict("already done", code="conflict"), 409, "conflict_error", {}),
    (errors.RateLimited("slow down", retry_after=2.5, code="quota"), 429, "rate_limit_error", {"retry-after": "3"}),
    (errors.Saturated("busy", retry_after=1, code="gateway_overloaded"), 429, "rate_limit_error", {"retry-after": "1"}),
    (errors.UpstreamError("nonsense", code="llm_failed"), 502, "api_error", {}),
    (errors.Unavailable("down", retry_after=7, code="llm_unavailable"), 503, "service_unavailable",
     {"retry-after": "7"}),
    (errors.DeadlineExceeded("late", code="llm_timeout"), 504, "timeout_error", {}),
]

# One route of each feature, and the collaborator method it calls: where an error it does not
# catch comes from.
ROUTES = [
    ("POST", "/v1/chat/completions", CHAT, ChatAnswerer, "complete"),
    ("GET", "/v1/models", None, ChatAnswerer, "models"),
    ("GET", "/v1/documents", None, DocumentLibrary, "page"),
    ("POST", "/v1/search", {"query": "q"}, DocumentLibrary, "search"),
    ("GET", "/v1/jobs", None, JobBoard, "recent"),
    ("DELETE", "/v1/jobs/some-id", None, JobBoard, "cancel"),
]


def _all_subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_all_subclasses(sub))]


def test_every_service_error_class_has_a_status_other_than_500() -> None:
    classes = _all_subclasses(errors.ServiceError)
    assert errors.PayloadTooLarge in classes and errors.Saturated in classes
    for cls in classes:
        exc = cls("x")
        assert http_status(exc)[0] != 500, cls


@pytest.mark.parametrize(("error", "status", "type_", "headers"), CASES,
                         ids=[type(case[0]).__name__ for case in CASES])
async def test_a_service_error_from_a_route_gets_its_status_and_shape(chat_gateway, monkeypatch, error, status,
                                                                      type_, headers) -> None:
    async def fails(*_args: Any, **_kwargs: Any) -> None:
        raise error

    for _method, _path, _body, owner, name in ROUTES:
        monkeypatch.setattr(owner, name, fails)
    client = (await chat_gateway(llm=False)).client
    for method, path, body, _owner, _name in ROUTES:
        reply = await client.request(method, path, json=body)
        assert reply.status_code == status, (path, reply.text)
        assert reply.json() == {"error": {"message": error.message, "type": type_, "param": error.param,
                                          "code": error.code}}
        for header, value in headers.items():
            assert reply.headers[header] == value, (path, header)
        if not headers:
            assert "retry-after" not in reply.headers
