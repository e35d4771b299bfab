"""A small typed error hierarchy, mapped to a status once per edge (gRPC, HTTP, consumer)."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the errors a service raises on purpose; the message is safe to show a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServiceError):
    pass


class NotFound(ServiceError):
    pass


class Conflict(ServiceError):
    pass


class Unavailable(ServiceError):
    pass


class DeadlineExceeded(ServiceError):
    pass
