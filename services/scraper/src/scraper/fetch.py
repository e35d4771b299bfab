"""HTTP fetching behind the SSRF guard: one pooled httpx transport, connections pinned to the
checked address, redirects followed by hand (each hop checked again), bounded bodies."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from scraper.body import ACCEPT_ENCODING, TooLarge, UnsupportedEncoding, read_bounded
from scraper.domain import SUPPORTED_TYPES, BlockReason, FetchFailed, Outcome, Trace
from scraper.guard import Blocked, ResolveFailed, Target, UrlGuard
from scraper.wire import LeanTransport

log = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
ACCEPT = "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.1"


@dataclass(frozen=True)
class Fetched:
    body: bytes
    media_type: str
    charset: str | None


def build_transport(*, max_connections: int) -> httpx.AsyncBaseTransport:
    """The process's one transport (`scraper.wire`): no proxies, no cookies, no idle connections
    kept. Idle connections are not kept: each is pinned to an address checked for one host and
    verified for that host's TLS name, so handing it to another host's request is unsafe."""
    return LeanTransport(max_connections=max_connections)


@dataclass(frozen=True)
class FetchOptions:
    user_agent: str
    connect_timeout: float
    read_timeout: float
    max_bytes: int
    max_redirects: int


class Fetcher:
    """Fetches through the transport itself, not an httpx client: redirects are followed here and
    no cookie is ever kept, so the client's layers (redirects, cookies, auth, hooks) would only
    cost CPU on every URL. The request's headers and timeouts are built once."""

    def __init__(self, transport: httpx.AsyncBaseTransport, guard: UrlGuard, options: FetchOptions) -> None:
        self._transport = transport
        self._guard = guard
        self._max_bytes = options.max_bytes
        self._max_redirects = options.max_redirects
        self._headers = [("User-Agent", options.user_agent), ("Accept", ACCEPT), ("Accept-Encoding", ACCEPT_ENCODING)]
        read = options.read_timeout
        self._timeout = {"connect": options.connect_timeout, "read": read, "write": read, "pool": read}

    async def fetch(self, trace: Trace) -> Fetched:
        """Fetch `trace.url`, filling in `trace`; raises FetchFailed."""
        url = trace.url
        for _hop in range(self._max_redirects + 1):
            trace.final_url = url
            target = await self._check(url)
            trace.final_url = target.url
            response = await self._send(target)
            try:
                trace.http_status = response.status_code
                location = response.headers.get("location")
                if response.status_code in REDIRECT_STATUSES and location:
                    url = urljoin(target.url, location.strip())
                    continue
                return await self._accept(response, trace)
            finally:
                await response.aclose()
        raise FetchFailed(Outcome.FETCH_ERROR, f"more than {self._max_redirects} redirects")

    async def _check(self, url: str) -> Target:
        try:
            return await self._guard.check(url)
        except Blocked as exc:
            raise FetchFailed(Outcome.BLOCKED, str(exc), exc.reason) from exc
        except ResolveFailed as exc:
            raise FetchFailed(Outcome.FETCH_ERROR, str(exc)) from exc

    async def _send(self, target: Target) -> httpx.Response:
        """GET the target from its checked addresses in turn, trying the next on connect failure."""
        extensions: dict[str, object] = {"timeout": self._timeout}
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
        headers = [*self._headers, ("Host", target.host_header)]
        failure = "no address"
        for address in target.addresses:
            try:
                request = httpx.Request("GET", target.url_for(address), headers=headers, extensions=extensions)
                return await self._transport.handle_async_request(request)
            except httpx.InvalidURL as exc:
                raise FetchFailed(Outcome.BLOCKED, "malformed URL", BlockReason.MALFORMED_URL) from exc
            except httpx.ConnectError as exc:
                failure = f"could not connect to {target.host}: {_describe(exc)}"
            except httpx.TimeoutException as exc:
                raise FetchFailed(Outcome.TIMEOUT, f"{target.host} did not answer in time") from exc
            except httpx.HTTPError as exc:
                raise FetchFailed(Outcome.FETCH_ERROR, f"{target.host}: {_describe(exc)}") from exc
        raise FetchFailed(Outcome.FETCH_ERROR, failure)

    async def _accept(self, response: httpx.Response, trace: Trace) -> Fetched:
        status = response.status_code
        if status >= 400 or status < 200:
            raise FetchFailed(Outcome.HTTP_ERROR, f"HTTP {status} {response.reason_phrase}".strip())
        if 300 <= status < 400:
            raise FetchFailed(Outcome.HTTP_ERROR, f"HTTP {status} without a usable Location")
        media_type, charset = _content_type(response.headers.get("content-type", ""))
        trace.content_type = media_type
        if media_type and media_type not in SUPPORTED_TYPES:
            raise FetchFailed(Outcome.UNSUPPORTED_TYPE, f"content type {media_type} is not HTML or text")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise FetchFailed(Outcome.TOO_LARGE, f"body of {declared} bytes is over the {self._max_bytes}-byte cap")
        body = await self._read(response)
        trace.bytes = len(body)
        if not media_type:
            if not body.lstrip()[:1] == b"<":
                raise FetchFailed(Outcome.UNSUPPORTED_TYPE, "no content type and the body is not HTML")
            media_type = "text/html"
        return Fetched(body, media_type, charset)

    async def _read(self, response: httpx.Response) -> bytes:
        try:
            return await read_bounded(
                response.aiter_raw(), response.headers.get("content-encoding", ""), self._max_bytes
            )
        except TooLarge as exc:
            raise FetchFailed(Outcome.TOO_LARGE, str(exc)) from exc
        except UnsupportedEncoding as exc:
            raise FetchFailed(Outcome.FETCH_ERROR, str(exc)) from exc
        except ValueError as exc:
            raise FetchFailed(Outcome.FETCH_ERROR, str(exc)) from exc
        except httpx.TimeoutException as exc:
            raise FetchFailed(Outcome.TIMEOUT, "the body did not arrive in time") from exc
        except httpx.HTTPError as exc:
            raise FetchFailed(Outcome.FETCH_ERROR, f"reading the body failed: {_describe(exc)}") from exc


def _content_type(header: str) -> tuple[str, str | None]:
    media_type, _, params = header.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip().strip('"') or None
    return media_type.strip().lower(), charset


def _describe(exc: Exception) -> str:
    return type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {str(exc)[:200]}"

