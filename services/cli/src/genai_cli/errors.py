"""What goes wrong talking to the gateway, as one readable line each (never a traceback)."""

from __future__ import annotations

import json

import httpx


class CliError(Exception):
    """Stops the command with `error: <message>` on stderr and a non-zero exit status."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ApiError(CliError):
    """The gateway answered with an error status; `message` comes from its JSON error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.detail = message


def api_error(status: int, body: bytes) -> ApiError:
    """`{"error": {"message": ...}}` (the gateway's shape) or, failing that, the start of the body."""
    message = ""
    try:
        payload = json.loads(body)
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or "")
        elif isinstance(payload, dict) and "detail" in payload:
            message = str(payload["detail"])
    except ValueError:
        message = body[:200].decode("utf-8", "replace").strip()
    if status == 401 and not message:
        message = "an API key is required"
    return ApiError(status, message or httpx.codes.get_reason_phrase(status) or "error")


def transport_error(url: str, exc: httpx.HTTPError) -> CliError:
    if isinstance(exc, httpx.ConnectError):
        return CliError(f"cannot connect to the gateway at {url} (is it running? set GENAI_URL or --url)")
    if isinstance(exc, httpx.TimeoutException):
        return CliError(f"the gateway at {url} did not answer in time")
    return CliError(f"talking to the gateway at {url} failed: {exc.__class__.__name__}: {exc}")
