"""Which IP addresses the scraper may connect to, decided with `ipaddress` properties.

Pure functions, no I/O. Host strings are read the way the C resolver reads them, so the
decimal, octal, hex and short IPv4 forms (`2130706433`, `0x7f.1`, `017700000001`, `127.1`)
are recognised as the addresses they are. IPv6 forms that carry an IPv4 address
(`::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, IPv4-compatible `::a.b.c.d`)
are judged by the IPv4 address inside them.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# RFC 6052 well-known NAT64 prefix: a gateway translates it to the embedded IPv4 address.
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
# Cloud instance metadata endpoints (AWS IPv6 one; the IPv4 one is link-local).
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})


class Reach(enum.Enum):
    PUBLIC = "public"  # globally routable: allowed
    INTERNAL = "internal"  # private, loopback, shared, reserved...: allowed only by configuration
    FORBIDDEN = "forbidden"  # metadata, link-local, multicast, unspecified: never allowed


@dataclass(frozen=True)
class Verdict:
    reach: Reach
    why: str  # short description of the address class, safe to show to a user


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host string denotes by itself, or None when it is a name to resolve."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return None
    try:
        # inet_aton accepts every IPv4 spelling getaddrinfo accepts (a, a.b, a.b.c, octal, hex).
        packed = socket.inet_aton(host)
    except (OSError, ValueError):
        return None
    return ipaddress.IPv4Address(packed)


def translated_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 spelling connects to: IPv4-mapped, NAT64 or IPv4-compatible."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(address))
    return None


def tunnelled_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 endpoint of a 6to4 or Teredo address (both the tunnel and it must be public)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


# IANA special-purpose ranges that are not public, listed rather than left to `ipaddress`: on some
# Python patch releases (3.11.7, before the CVE-2024-4032 fix) parts of them count as global.
SPECIAL_PURPOSE = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "240.0.0.0/4", "255.255.255.255/32",
    "100::/64", "2001:2::/48", "2001:10::/28", "2001:20::/28", "2001:db8::/32", "3fff::/20", "5f00::/16",
    "fc00::/7",
))


def _forbidden_why(address: IPAddress) -> str | None:
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    return None


def _internal_why(address: IPAddress) -> str | None:
    if address.is_loopback:
        return "loopback"
    if any(address in network for network in SPECIAL_PURPOSE):
        return "special-purpose"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:  # e.g. 100.64.0.0/10, shared address space (carrier-grade NAT)
        return "non-public"
    return None


def classify(address: IPAddress) -> Verdict:
    """Judge an address together with any IPv4 address embedded in it."""
    translated = translated_ipv4(address)
    # A translated spelling reaches only its IPv4 address; a tunnel must be public at both ends.
    judged = [translated] if translated is not None else [address, tunnelled_ipv4(address)]
    for candidate in (address, *judged):
        if candidate is not None and (why := _forbidden_why(candidate)):
            return Verdict(Reach.FORBIDDEN, why)
    for candidate in judged:
        if candidate is not None and (why := _internal_why(candidate)):
            return Verdict(Reach.INTERNAL, why)
    return Verdict(Reach.PUBLIC, "public")
