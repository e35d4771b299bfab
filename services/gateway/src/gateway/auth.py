"""API keys for the `/v1` API: `Authorization: Bearer <key>`, each key belonging to a tenant.

Keys come from GATEWAY_API_KEYS (`tenant:key` entries; a bare key belongs to the tenant
`default`) or from the file GATEWAY_API_KEYS_FILE (`tenant:sha256-hex-of-key` lines, `#`
comments), so no plain key need sit in the environment. A presented key is compared as a SHA-256
digest with `hmac.compare_digest` against every configured key with no early exit, so neither
the match position nor the key length shows in the timing. Keys are never logged: a caller is
known by its tenant and by `key_id`, a short digest prefix safe for logs and limit counters.
With no keys configured the API is open and everything belongs to the tenant `default`.

The key is checked from the headers before any body is read (`gateway.intake`), which puts the
`Principal` in the request's scope; routes read it with the `Caller` dependency.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import SecretStr

from genai_common.errors import Unauthenticated

DEFAULT_TENANT = "default"
# Where gateway.intake leaves the authenticated caller in the ASGI scope.
SCOPE_KEY = "genai.principal"
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")

_bearer = HTTPBearer(auto_error=False, description="A key from GATEWAY_API_KEYS")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant that owns the data it may see, and a log-safe id of its key."""

    tenant: str
    key_id: str


ANONYMOUS = Principal(DEFAULT_TENANT, "anonymous")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def _split_entry(entry: str) -> tuple[str, str]:
    """(tenant, key) of a GATEWAY_API_KEYS entry: `tenant:key`, or a bare key (tenant `default`)."""
    tenant, colon, key = entry.partition(":")
    if colon and key and _TENANT.match(tenant):
        return tenant, key
    return DEFAULT_TENANT, entry


def read_key_file(path: Path) -> list[tuple[str, bytes]]:
    """(tenant, digest) of each `tenant:sha256hex` line; a bad line fails start-up, naming its number."""
    entries = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tenant, _, digest = line.partition(":")
        if not _TENANT.match(tenant) or not _HEX_DIGEST.match(digest):
            raise ValueError(f"{path.name} line {number}: expected tenant:sha256-hex-of-the-key")
        entries.append((tenant, bytes.fromhex(digest)))
    return entries


class ApiKeyAuth:
    """The configured keys; `authenticate` turns an Authorization header into a `Principal`."""

    def __init__(self, keys: Sequence[SecretStr] = (), hashed: Iterable[tuple[str, bytes]] = ()) -> None:
        entries = [_split_entry(k.get_secret_value()) for k in keys]
        self._digests = [(tenant, _digest(key)) for tenant, key in entries] + list(hashed)
        # Each key's caller, built once rather than per request (a key listed twice: its first entry).
        self._principals: dict[bytes, Principal] = {}
        for tenant, digest in self._digests:
            self._principals.setdefault(digest, Principal(tenant, digest.hex()[:16]))

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def tenant_of(self, presented: str) -> tuple[str, bytes] | None:
        """(tenant, digest) of the configured key `presented` is, compared with every key."""
        candidate = _digest(presented)
        found: tuple[str, bytes] | None = None
        for tenant, digest in self._digests:
            if hmac.compare_digest(candidate, digest) and found is None:
                found = (tenant, digest)
        return found

    def matches(self, presented: str) -> bool:
        return self.tenant_of(presented) is not None

    def verify(self, key: str | None) -> Principal:
        """The caller `key` belongs to; Unauthenticated unless it is a configured key (or none is)."""
        if not self._digests:
            return ANONYMOUS
        if key is None:
            raise Unauthenticated("missing API key: send Authorization: Bearer <key>", code="invalid_api_key")
        found = self.tenant_of(key)
        if found is None:
            raise Unauthenticated("invalid API key", code="invalid_api_key")
        return self._principals[found[1]]

    def verify_header(self, authorization: str | None) -> Principal:
        """`verify` the key of an `Authorization: Bearer <key>` header, read as HTTPBearer reads it."""
        scheme, key = get_authorization_scheme_param(authorization)
        return self.verify(key if authorization and key and scheme.lower() == "bearer" else None)

    async def __call__(self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        """Declares the bearer scheme in the OpenAPI document; the check itself ran in gateway.intake."""


def principal_of(request: Request) -> Principal:
    """The caller gateway.intake authenticated. A route it did not run for (one outside /v1) has
    no caller: refused, rather than taken for the default tenant."""
    principal = request.scope.get(SCOPE_KEY)
    if not isinstance(principal, Principal):
        raise Unauthenticated("this route takes no API key", code="invalid_api_key")
    return principal


async def _caller(request: Request) -> Principal:
    return principal_of(request)


Caller = Annotated[Principal, Depends(_caller)]
