"""The scraper's own HTTP transport (scraper.wire) against raw local servers: the answers a web
server may give that FakeSite does not (no length, cut short, not HTTP, nobody listening), the cap
on connections open at once, and TLS verified for the name the fetcher gives."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scraper.wire import LeanTransport

TIMEOUT = {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _answering(raw: bytes, *, close: bool = True) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(raw)
        await writer.drain()
        if close:
            writer.close()
        else:
            await asyncio.sleep(10)
    return handler


async def _get(transport: httpx.AsyncBaseTransport, port: int, path: str = "/") -> tuple[httpx.Response, bytes]:
    request = httpx.Request("GET", f"http://127.0.0.1:{port}{path}", headers=[("Host", "example.test")],
                            extensions={"timeout": TIMEOUT})
    response = await transport.handle_async_request(request)
    try:
        return response, b"".join([piece async for piece in response.aiter_raw()])
    finally:
        await response.aclose()


@pytest.fixture
async def transport() -> AsyncIterator[LeanTransport]:
    lean = LeanTransport(max_connections=4)
    yield lean
    await lean.aclose()


async def test_the_request_goes_out_as_asked_and_the_answer_comes_back(transport: LeanTransport) -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 4\r\n\r\nnope")
        await writer.drain()

    server, port = await _serve(handler)
    async with server:
        response, body = await _get(transport, port, "/a/b?c=d")
    assert seen[0].startswith(b"GET /a/b?c=d HTTP/1.1\r\n") and b"Host: example.test\r\n" in seen[0]
    assert (response.status_code, response.reason_phrase, body) == (404, "Not Found", b"nope")
    assert response.headers["content-type"] == "text/html"


async def test_a_chunked_body_and_a_body_ended_by_closing_both_arrive_whole(transport: LeanTransport) -> None:
    chunked, chunked_port = await _serve(_answering(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", close=False))
    unsized, unsized_port = await _serve(
        _answering(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<p>to the end</p>"))
    async with chunked, unsized:
        assert (await _get(transport, chunked_port))[1] == b"hello world"
        assert (await _get(transport, unsized_port))[1] == b"<p>to the end</p>"


async def test_a_body_cut_short_or_an_answer_that_is_not_http_is_an_error(transport: LeanTransport) -> None:
    cut, cut_port = await _serve(_answering(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"))
    junk, junk_port = await _serve(_answering(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"))
    silent, silent_port = await _serve(_answering(b""))
    async with cut, junk, silent:
        with pytest.raises(httpx.RemoteProtocolError):
            await _get(transport, cut_port)
        with pytest.raises(httpx.RemoteProtocolError):
            await _get(transport, junk_port)
        with pytest.raises(httpx.RemoteProtocolError):
            await _get(transport, silent_port)


async def test_nobody_listening_is_a_connect_error_and_silence_a_read_timeout(transport: LeanTransport) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        await _get(transport, closed_port)

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    server, port = await _serve(mute)
    request = httpx.Request("GET", f"http://127.0.0.1:{port}/", extensions={"timeout": {**TIMEOUT, "read": 0.2}})
    async with server:
        with pytest.raises(httpx.ReadTimeout):
            await transport.handle_async_request(request)


async def test_connections_open_at_once_are_capped_and_given_back(transport: LeanTransport) -> None:
    open_now = peak = 0
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, peak
        open_now += 1
        peak = max(peak, open_now)
        await reader.readuntil(b"\r\n\r\n")
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()  # until the client closes
        open_now -= 1

    server, port = await _serve(handler)
    async with server:
        fetches = [asyncio.create_task(_get(transport, port)) for _ in range(10)]
        await asyncio.sleep(0.3)
        assert peak == 4  # the transport's max_connections
        release.set()
        answers = await asyncio.gather(*fetches)
    assert [body for _, body in answers] == [b"ok"] * 10


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` signed by its own key (cert file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


async def test_tls_is_verified_against_the_name_the_fetcher_gives(tmp_path: Path) -> None:
    cert_file, key_file = _self_signed(tmp_path, "site.test")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    server = await asyncio.start_server(_answering(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret"),
                                        "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    trusting = LeanTransport(max_connections=2, ssl_context=ssl.create_default_context(cafile=str(cert_file)))

    async def get(transport: LeanTransport, name: str) -> bytes:
        request = httpx.Request("GET", f"https://127.0.0.1:{port}/", headers=[("Host", name)],
                                extensions={"timeout": TIMEOUT, "sni_hostname": name})
        response = await transport.handle_async_request(request)
        try:
            return b"".join([piece async for piece in response.aiter_raw()])
        finally:
            await response.aclose()

    async with server:
        assert await get(trusting, "site.test") == b"secret"
        with pytest.raises(httpx.ConnectError):  # the certificate does not name this host
            await get(trusting, "other.test")
        with pytest.raises(httpx.ConnectError):  # the default trust store does not know its issuer
            await get(LeanTransport(max_connections=2), "site.test")
