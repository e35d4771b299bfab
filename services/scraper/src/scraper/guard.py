"""SSRF guard: decides, before any connection, whether and where a URL may be fetched.

`UrlGuard.check` parses the URL, applies the scheme and port rules, resolves the host once
(through an injectable `Resolver`) and refuses it if ANY address is not allowed. The caller
must connect only to the returned `Target.addresses` (no second lookup: DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import idna

from scraper.addresses import IPAddress, Reach, classify, parse_ip_literal
from scraper.domain import BlockReason

DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_CHARS = 8192
# Characters that may not appear in a host name once it is percent-decoded.
_NOT_IN_HOSTS = frozenset(" /\\@:?#[]%")


class Blocked(Exception):
    """The guard refused the URL; the message says why and is safe to show, `reason` its kind."""

    def __init__(self, message: str, reason: BlockReason = BlockReason.MALFORMED_URL) -> None:
        super().__init__(message)
        self.reason = reason


class ResolveFailed(Exception):
    """The host name did not resolve (or not in time)."""


class Resolver(Protocol):
    async def resolve(self, host: str) -> Sequence[IPAddress]: ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo in the loop's executor), with a timeout."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout

    async def resolve(self, host: str) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except TimeoutError as exc:
            raise ResolveFailed(f"resolving {host} timed out") from exc
        except (socket.gaierror, UnicodeError) as exc:
            raise ResolveFailed(f"{host} does not resolve") from exc
        found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Policy:
    allowed_ports: frozenset[int]
    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()  # exact names, or "*.suffix"
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def build(cls, *, allowed_ports: Iterable[int], allow_private: bool, allowlist: Iterable[str]) -> Policy:
        hosts: set[str] = set()
        networks = []
        for entry in allowlist:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(allowed_ports), allow_private, frozenset(hosts), tuple(networks))

    def host_allowed(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        if name in self.allowed_hosts:
            return True
        return any(p.startswith("*.") and name.endswith(p[1:]) for p in self.allowed_hosts)

    def refusal(self, address: IPAddress, *, host_allowed: bool) -> str | None:
        """Why `address` may not be contacted, or None when it may."""
        verdict = classify(address)
        if verdict.reach is Reach.PUBLIC:
            return None
        if verdict.reach is Reach.INTERNAL and (
            self.allow_private or host_allowed or any(address in net for net in self.allowed_networks)
        ):
            return None
        return f"{verdict.why} address"


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (addresses) and what to ask for (host, port, path)."""

    url: str  # normalised absolute URL naming the real host
    scheme: str
    host: str  # ASCII host (IDNA), no brackets: Host header and TLS server name
    port: int
    path: str  # path and query, never empty
    addresses: tuple[IPAddress, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    def url_for(self, address: IPAddress) -> str:
        """The URL that connects to `address` directly (the Host header names the real host)."""
        literal = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{literal}:{self.port}{self.path}"


class UrlGuard:
    def __init__(self, policy: Policy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolver = resolver

    async def check(self, url: str) -> Target:
        """Raise Blocked (refused) or ResolveFailed; otherwise the Target to connect to."""
        scheme, host, port, path = _split(url)
        if port not in self._policy.allowed_ports:
            raise Blocked(f"port {port} is not allowed", BlockReason.PORT)
        literal = parse_ip_literal(host)
        host_allowed = self._policy.host_allowed(host)
        addresses = [literal] if literal is not None else list(await self._resolver.resolve(host))
        if not addresses:
            raise ResolveFailed(f"{host} has no addresses")
        for address in addresses:
            if why := self._policy.refusal(address, host_allowed=host_allowed):
                reason = (BlockReason.FORBIDDEN_ADDRESS if classify(address).reach is Reach.FORBIDDEN
                          else BlockReason.INTERNAL_ADDRESS)
                raise Blocked(f"{host} is a {why}" if literal is not None else f"{host} resolves to a {why}", reason)
        netloc = f"[{host}]" if ":" in host else host
        if port != DEFAULT_PORTS[scheme]:
            netloc = f"{netloc}:{port}"
        normalised = urlunsplit((scheme, netloc, path, "", ""))
        return Target(normalised, scheme, host, port, path, tuple(addresses))


def _split(url: str) -> tuple[str, str, int, str]:
    """Scheme, ASCII host, port and path+query of an absolute http(s) URL; Blocked otherwise."""
    if len(url) > MAX_URL_CHARS:
        raise Blocked(f"URL longer than {MAX_URL_CHARS} characters")
    if any(ch in url for ch in "\r\n\t\x00 ") or not url.isprintable():
        raise Blocked("malformed URL")
    try:
        parts = urlsplit(url)
        port = parts.port
        raw_host = parts.hostname or ""
    except ValueError as exc:
        raise Blocked("malformed URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise Blocked(f"scheme {scheme or '(none)'!r} is not allowed", BlockReason.SCHEME)
    if parts.username is not None or parts.password is not None:
        raise Blocked("credentials in URLs are not allowed", BlockReason.CREDENTIALS)
    if not raw_host:
        raise Blocked("URL has no host")
    host = _ascii_host(raw_host)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme], path


def _ascii_host(host: str) -> str:
    """The host as it is resolved and sent: IPv6 as given; a name or IPv4 form percent-decoded,
    IDNA-mapped (fullwidth digits and dots become ASCII) and without its trailing dot, as browsers
    read it, so `%31%32%37.0.0.1` and `127.0.0.1.` are seen as the loopback address they are."""
    if ":" in host:
        return host.lower()
    if "%" in host:
        try:
            host = unquote(host, errors="strict")
        except UnicodeDecodeError as exc:
            raise Blocked("malformed host name") from exc
        if not host.isprintable() or any(ch in host for ch in _NOT_IN_HOSTS):
            raise Blocked("malformed host name")
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise Blocked("malformed host name") from exc
    host = host.lower().removesuffix(".")
    if not host.strip("."):
        raise Blocked("URL has no host")
    return host
