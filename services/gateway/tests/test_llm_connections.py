"""The LLM client's connections (`gateway.http_pool` under `gateway.llm.LLM`) against real HTTP
servers: kept alive and reused, bounded by the limit, replaced after their maximum age with the
host name resolved again (so replicas behind a Service share the chats), a kept-alive
connection the server closed costs no chat, and an https LLM's certificate must name its host."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.http_pool import IDLE_SECONDS, HttpPool
from gateway.llm import LLM
from genai_common.errors import Unavailable
from tests.fakes.fake_llm import FakeLLM
from tests.support.eventually import eventually

MESSAGES = [{"role": "user", "content": "hi"}]


class Clock:
    """The pool's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _llm(pool: HttpPool) -> LLM:
    return LLM(pool, api_key="sk-test", model="fake-model", deadline=5.0)


@pytest.fixture
async def clock() -> Clock:
    return Clock()


@pytest.fixture
async def pool(fake_llm: FakeLLM, clock: Clock) -> AsyncIterator[HttpPool]:
    pool = HttpPool(fake_llm.base_url, max_connections=2, max_age=60.0, connect_deadline=5.0, clock=clock)
    yield pool
    await pool.close()


def _ports(fake: FakeLLM) -> list[int]:
    return [r.client_port for r in fake.chat_requests()]


async def test_chats_through_the_gateway_share_a_kept_alive_connection(chat_gateway, fake_llm) -> None:
    client = (await chat_gateway()).client
    for stream in (False, True, False):
        reply = await client.post("/v1/chat/completions", json={
            "model": "m", "messages": MESSAGES, "stream": stream, "genai": {"rag": False, "scrape": False}})
        assert reply.status_code == 200
    ports = _ports(fake_llm)
    assert len(ports) == 3 and len(set(ports)) == 1, ports
    assert fake_llm.chat_requests()[0].headers["authorization"] == "Bearer not-needed"


async def test_a_connection_past_its_max_age_is_replaced(pool: HttpPool, clock: Clock, fake_llm: FakeLLM) -> None:
    llm = _llm(pool)
    for _ in range(20):  # a chat every 3 s: the connection never idles long enough to be dropped
        await llm.complete(MESSAGES, {})
        clock.now += 3.0
    answer = await llm.complete(MESSAGES, {})  # its connection is 60 s old: a fresh one
    assert answer["choices"][0]["message"]["content"].startswith("Fake answer")
    ports = _ports(fake_llm)
    assert len(set(ports[:20])) == 1 and ports[20] != ports[0], ports
    assert pool.connections_opened == 2


async def test_a_connection_idle_for_seconds_is_not_reused(pool: HttpPool, clock: Clock, fake_llm: FakeLLM) -> None:
    llm = _llm(pool)
    await llm.complete(MESSAGES, {})
    clock.now += IDLE_SECONDS  # the server may be closing it (uvicorn does after 5 s)
    await llm.complete(MESSAGES, {})
    assert len(set(_ports(fake_llm))) == 2


async def test_new_connections_take_turns_over_the_addresses_of_the_name(clock: Clock) -> None:
    with FakeLLM() as one, FakeLLM() as two:
        asked: list[str] = []

        async def resolver(host: str, port: int) -> list[tuple[str, int]]:
            asked.append(host)  # a headless Service's name resolves to one address per replica
            return [("127.0.0.1", one.port), ("127.0.0.1", two.port)]

        pool = HttpPool("http://vllm.genai.svc:8000/v1", max_connections=4, max_age=30.0, connect_deadline=5.0,
                        resolver=resolver, clock=clock)
        llm = _llm(pool)
        for _ in range(4):
            await llm.complete(MESSAGES, {})
            clock.now += 30.0
        await pool.close()
    assert asked == ["vllm.genai.svc"] * 4  # resolved again for each new connection
    assert (len(one.chat_requests()), len(two.chat_requests())) == (2, 2)
    assert one.chat_requests()[0].headers["host"] == "vllm.genai.svc:8000"


async def test_requests_beyond_the_limit_wait_for_a_connection(pool: HttpPool, fake_llm: FakeLLM) -> None:
    llm = _llm(pool)
    fake_llm.held.set()
    calls = [asyncio.create_task(llm.complete(MESSAGES, {})) for _ in range(5)]
    await eventually(lambda: pool.waiting, lambda n: n == 3, what="three requests waiting for a connection")
    # The limit: two connections, one request each, at the server.
    await eventually(lambda: len(fake_llm.chat_requests()), lambda n: n == 2, what="two requests at the LLM")
    assert pool.waiting == 3
    fake_llm.held.clear()
    answers = await asyncio.gather(*calls)
    assert len(answers) == 5 and len(fake_llm.chat_requests()) == 5
    assert len(set(_ports(fake_llm))) == 2


class ClosingServer:
    """Answers the first request of each connection (keep-alive), and closes the connection without
    an answer when a second one arrives: a server whose keep-alive timeout ran out just then."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = False
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                self.requests += 1
                if answered:
                    return
                body = orjson.dumps({"id": "x", "object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]})
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                answered = True
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


async def test_a_kept_alive_connection_the_server_closed_is_retried_on_a_fresh_one(clock: Clock) -> None:
    closing = ClosingServer()
    server = await asyncio.start_server(closing.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = HttpPool(f"http://127.0.0.1:{port}/v1", max_connections=2, max_age=60.0, connect_deadline=5.0,
                    clock=clock)
    llm = _llm(pool)
    try:
        for _ in range(3):
            assert (await llm.complete(MESSAGES, {}))["choices"][0]["message"]["content"] == "ok"
    finally:
        await pool.close()
        server.close()
    assert closing.connections == 3 and closing.requests == 5  # two requests met a closing connection


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_an_https_llm_is_reached_with_its_name_verified(tmp_path: Path, clock: Clock) -> None:
    cert, key = _self_signed(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    closing = ClosingServer()
    server = await asyncio.start_server(closing.handle, "127.0.0.1", 0, ssl=served)
    port = server.sockets[0].getsockname()[1]
    trusted = ssl.create_default_context(cafile=str(cert))

    async def localhost(host: str, port_: int) -> list[tuple[str, int]]:
        return [("127.0.0.1", port_)]

    def pool(name: str) -> HttpPool:
        return HttpPool(f"https://{name}:{port}/v1", max_connections=1, max_age=60.0, connect_deadline=5.0,
                        resolver=localhost, clock=clock, tls=trusted)

    try:
        good = pool("localhost")
        assert (await _llm(good).complete(MESSAGES, {}))["choices"][0]["message"]["content"] == "ok"
        await good.close()
        wrong = pool("llm.other.test")  # the certificate names localhost only
        with pytest.raises(Unavailable):
            await _llm(wrong).complete(MESSAGES, {})
        await wrong.close()
    finally:
        server.close()


async def test_an_answer_larger_than_the_read_buffer_arrives_whole(clock: Clock) -> None:
    content = "x" * (3 * 1024 * 1024)  # past the buffer that pauses a streamed body's reading

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)
        body = orjson.dumps({"id": "x", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        for start in range(0, len(body), 64 * 1024):
            writer.write(body[start:start + 64 * 1024])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = HttpPool(f"http://127.0.0.1:{port}/v1", max_connections=1, max_age=60.0, connect_deadline=5.0,
                    clock=clock)
    try:
        answer = await _llm(pool).complete(MESSAGES, {})
    finally:
        await pool.close()
        server.close()
    assert answer["choices"][0]["message"]["content"] == content
