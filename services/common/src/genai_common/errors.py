"""A small typed error hierarchy, mapped to a status once per edge (gRPC, HTTP, consumer).

Every error a service raises on purpose is a `ServiceError`; its message is safe to show a
client. `code` is a short machine-readable reason (`file_too_large`, `llm_timeout`...) and
`param` the request field at fault, both optional. An edge maps the *class* to its status:

| class | HTTP | gRPC |
| --- | --- | --- |
| InvalidInput | 400 | INVALID_ARGUMENT |
| PayloadTooLarge (an InvalidInput) | 413 | INVALID_ARGUMENT |
| UnsupportedMediaType (an InvalidInput) | 415 | INVALID_ARGUMENT |
| ValidationFailed (an InvalidInput) | 422 | INVALID_ARGUMENT |
| RequestTimeout (an InvalidInput) | 408 | INVALID_ARGUMENT |
| Unauthenticated | 401 | UNAUTHENTICATED |
| NotFound | 404 | NOT_FOUND |
| Conflict | 409 | FAILED_PRECONDITION |
| RateLimited (Saturated is one) | 429 + Retry-After | RESOURCE_EXHAUSTED |
| UpstreamError | 502 | UNAVAILABLE |
| Unavailable | 503 (+ Retry-After when known) | UNAVAILABLE |
| DeadlineExceeded | 504 | DEADLINE_EXCEEDED |

A consumer treats `InvalidInput` as permanent (dead-letter, no retry) and the others as
transient (retried with back-off).
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the errors a service raises on purpose; the message is safe to show a client."""

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


class InvalidInput(ServiceError):
    """The request can never succeed as sent."""


class PayloadTooLarge(InvalidInput):
    """A body, file or field over its size limit."""


class UnsupportedMediaType(InvalidInput):
    """A body or file of a type this endpoint does not take."""


class ValidationFailed(InvalidInput):
    """A well-formed request with a field that breaks a rule (too many items, a reused key...)."""


class RequestTimeout(InvalidInput):
    """The client took longer than allowed to send its request (a slow upload)."""


class Unauthenticated(ServiceError):
    """No credentials, or credentials that match no key."""


class NotFound(ServiceError):
    pass


class Conflict(ServiceError):
    pass


class RateLimited(ServiceError):
    """Refused for now: retry after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float = 1.0, code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message, code=code, param=param)
        self.retry_after = retry_after


class Saturated(RateLimited):
    """Too much work in flight here (a local concurrency limit), not the caller's quota."""


class Unavailable(ServiceError):
    """A dependency is down or refused the work; `retry_after` seconds when it is known."""

    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message, code=code, param=param)
        self.retry_after = retry_after


class UpstreamError(ServiceError):
    """A dependency answered, but with an error or an answer that makes no sense."""


class DeadlineExceeded(ServiceError):
    pass


def retry_after_header(seconds: float) -> str:
    """`Retry-After` takes whole seconds: round up, at least 1."""
    whole = int(seconds)
    return str(max(1, whole if whole == seconds else whole + 1))
