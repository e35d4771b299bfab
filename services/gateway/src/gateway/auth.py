"""API keys for the `/v1` API: `Authorization: Bearer <key>` checked against GATEWAY_API_KEYS.

Keys are compared as SHA-256 digests with `hmac.compare_digest`, against every configured key
with no early exit, so neither the match position nor the key length shows in the timing.
Keys are never logged. With no keys configured the API is open (the app warns at start).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import SecretStr

from genai_common.errors import Unauthenticated

_bearer = HTTPBearer(auto_error=False, description="A key from GATEWAY_API_KEYS")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class ApiKeyAuth:
    """A FastAPI dependency: `app.include_router(router, dependencies=[Depends(ApiKeyAuth(keys))])`."""

    def __init__(self, keys: Sequence[SecretStr]) -> None:
        self._digests = [_digest(k.get_secret_value()) for k in keys]

    def matches(self, presented: str) -> bool:
        candidate = _digest(presented)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(candidate, digest)
        return matched

    def verify(self, key: str | None) -> None:
        """Raise Unauthenticated unless `key` is a configured key (or none is configured)."""
        if not self._digests:
            return
        if key is None:
            raise Unauthenticated("missing API key: send Authorization: Bearer <key>", code="invalid_api_key")
        if not self.matches(key):
            raise Unauthenticated("invalid API key", code="invalid_api_key")

    def verify_header(self, authorization: str | None) -> None:
        """`verify` the key of an `Authorization: Bearer <key>` header, read as HTTPBearer reads it."""
        scheme, key = get_authorization_scheme_param(authorization)
        self.verify(key if authorization and key and scheme.lower() == "bearer" else None)

    async def __call__(self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        self.verify(credentials.credentials if credentials is not None else None)
