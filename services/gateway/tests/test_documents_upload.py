"""POST /v1/documents: streamed to the blob store, sniffed, recorded, published with a confirm."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator

import pytest
from pypdf import PdfWriter

from genai.events.v1 import events_pb2
from tests.support import rabbitmq

BOUNDARY = "genai-test-boundary"


def tiny_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 8


def multipart(data: bytes, filename: str = "paper.pdf", content_type: str = "application/pdf",
              disposition: str | None = None) -> bytes:
    disposition = disposition or f'form-data; name="file"; filename="{filename}"'
    return (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n".encode()
            + data + f"\r\n--{BOUNDARY}--\r\n".encode())


HEADERS = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


async def test_pdf_upload_is_recorded_stored_and_published_once(documents_gateway) -> None:
    gw = await documents_gateway()
    pdf = tiny_pdf()
    reply = await gw.client.post("/v1/documents", content=multipart(pdf), headers=HEADERS)
    assert reply.status_code == 202, reply.text
    doc = reply.json()
    assert doc["status"] == "queued" and doc["media_type"] == "application/pdf" and doc["name"] == "paper.pdf"
    assert doc["size_bytes"] == len(pdf) and doc["sha256"] == hashlib.sha256(pdf).hexdigest()
    [blob] = gw.stored_blobs()
    assert blob.read_bytes() == pdf and doc["id"] in blob.name
    [message] = await gw.published()
    event = events_pb2.DocumentUploaded.FromString(message.body)
    assert message.message_id == doc["id"] and message.headers["document_id"] == doc["id"]
    assert message.delivery_mode == 2  # persistent
    assert (event.document_id, event.sha256, event.media_type, event.size_bytes) == (
        doc["id"], doc["sha256"], "application/pdf", len(pdf))
    assert gw.blob_root.joinpath(event.blob_key).read_bytes() == pdf
    assert (await gw.client.get(f"/v1/documents/{doc['id']}")).json()["status"] == "queued"


@pytest.mark.parametrize(("data", "filename", "media_type"), [
    ("Plain notes.\nSecond line.\n".encode(), "notes.txt", "text/plain"),
    ("Some notes".encode(), "notes.md", "text/markdown"),
    ("# Title\n\nText with a [link](http://x.example).\n\n## Part\n".encode(), "upload.bin", "text/markdown"),
    ("Грамматика и 日本語のテキスト。".encode(), "unicode.txt", "text/plain"),
])
async def test_text_and_markdown_are_sniffed_from_the_bytes(documents_gateway, data, filename, media_type) -> None:
    gw = await documents_gateway()
    reply = await gw.client.post("/v1/documents", content=multipart(data, filename, "application/octet-stream"),
                                 headers=HEADERS)
    assert reply.status_code == 202, reply.text
    assert reply.json()["media_type"] == media_type


@pytest.mark.parametrize("data", [PNG, b"%!PS-Adobe-3.0\n" + b"\x00\x01\x02" * 100, "utf-16 text".encode("utf-16")])
async def test_a_file_that_is_not_pdf_or_text_is_415_and_nothing_is_kept(documents_gateway, data) -> None:
    gw = await documents_gateway()
    reply = await gw.client.post("/v1/documents", content=multipart(data, "photo.pdf", "application/pdf"),
                                 headers=HEADERS)
    assert reply.status_code == 415, reply.text
    assert reply.json()["error"]["param"] == "file"
    assert gw.stored_blobs() == [] and await gw.published() == []
    assert (await gw.client.get("/v1/documents")).json()["data"] == []


async def _counted(body: bytes, chunk: int, sent: list[int]) -> AsyncIterator[bytes]:
    for start in range(0, len(body), chunk):
        sent.append(len(body[start:start + chunk]))
        yield body[start:start + chunk]


async def test_oversize_upload_stops_reading_at_the_cap_and_keeps_nothing(documents_gateway) -> None:
    cap, chunk = 256 * 1024, 16 * 1024
    gw = await documents_gateway(upload_max_bytes=cap)
    body = multipart(b"a" * (4 * cap), "big.txt", "text/plain")
    sent: list[int] = []
    reply = await gw.client.post("/v1/documents", content=_counted(body, chunk, sent), headers=HEADERS)
    assert reply.status_code == 413, reply.text
    assert sum(sent) <= cap + 2 * chunk, "the gateway read far past the cap"
    assert gw.stored_blobs() == [] and await gw.published() == []
    assert list(gw.blob_root.rglob("*.part")) == []


async def test_declared_oversize_content_length_is_refused_before_reading(documents_gateway) -> None:
    cap = 64 * 1024
    gw = await documents_gateway(upload_max_bytes=cap)
    sent: list[int] = []
    body = multipart(b"a" * (10 * cap), "big.txt", "text/plain")
    reply = await gw.client.post("/v1/documents", content=_counted(body, 8192, sent),
                                 headers={**HEADERS, "content-length": str(len(body))})
    assert reply.status_code == 413
    assert sum(sent) <= 8192
    assert gw.stored_blobs() == []


@pytest.mark.parametrize(("disposition", "expected"), [
    ('form-data; name="file"; filename="../../etc/passwd.txt"', "passwd.txt"),
    ('form-data; name="file"; filename="C:\\\\Users\\\\x\\\\report.txt"', "report.txt"),
    ('form-data; name="file"; filename="invoice\u202etxt.exe"', "invoicetxt.exe"),
    ('form-data; name="file"; filename="a\x01b\x7fc\u200b.txt"', "abc.txt"),
    ('form-data; name="file"; filename="...."', "document.txt"),
    ('form-data; name="file"; filename=""', "document.txt"),
    ("form-data; name=\"file\"; filename=\"x.txt\"; filename*=UTF-8''%E2%80%AEr%C3%A9sum%C3%A9.txt", "résumé.txt"),
    ('form-data; name="file"; filename="ｆｕｌｌｗｉｄｔｈ.txt"', "fullwidth.txt"),
])
async def test_hostile_file_names_become_safe_metadata(documents_gateway, disposition, expected) -> None:
    gw = await documents_gateway()
    body = multipart("Harmless text.".encode(), content_type="text/plain", disposition=disposition)
    reply = await gw.client.post("/v1/documents", content=body, headers=HEADERS)
    assert reply.status_code == 202, reply.text
    assert reply.json()["name"] == expected
    [blob] = gw.stored_blobs()
    assert blob.parent == gw.blob_root / "documents" and blob.name == reply.json()["id"]


async def test_a_very_long_file_name_is_capped_keeping_its_extension(documents_gateway) -> None:
    gw = await documents_gateway()
    body = multipart(b"text", filename="x" * 1000 + ".md", content_type="text/plain")
    name = (await gw.client.post("/v1/documents", content=body, headers=HEADERS)).json()["name"]
    assert len(name) <= 200 and name.endswith(".md")


@pytest.mark.parametrize(("body", "headers", "status", "param"), [
    (multipart(b"", "empty.txt", "text/plain"), HEADERS, 422, "file"),
    (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--{BOUNDARY}--\r\n".encode(),
     HEADERS, 422, "file"),
    (b"just bytes", {"content-type": "application/pdf"}, 415, "file"),
    (multipart(b"text", "t.txt")[:-20], HEADERS, 400, None),
])
async def test_bad_upload_requests_name_the_problem(documents_gateway, body, headers, status, param) -> None:
    gw = await documents_gateway()
    reply = await gw.client.post("/v1/documents", content=body, headers=headers)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["param"] == param
    assert gw.stored_blobs() == [] and await gw.published() == []


@pytest.fixture
def empty_vhost():
    with rabbitmq.temporary_vhost("gateway-empty") as url:
        yield url


async def test_upload_when_nothing_consumes_uploads_is_503_and_leaves_nothing(documents_gateway, empty_vhost) -> None:
    """No queue is bound for `document.uploaded` (ingest never started): the broker returns it."""
    gw = await documents_gateway(bind_uploads=False, amqp_url=empty_vhost)
    reply = await gw.client.post("/v1/documents", content=multipart(tiny_pdf()), headers=HEADERS)
    assert reply.status_code == 503, reply.text
    assert gw.stored_blobs() == []
    assert (await gw.client.get("/v1/documents")).json()["data"] == []


async def test_upload_while_the_broker_connection_is_gone_is_503_and_leaves_nothing(documents_gateway) -> None:
    gw = await documents_gateway()
    await gw.resources.amqp.close()
    reply = await gw.client.post("/v1/documents", content=multipart(tiny_pdf()), headers=HEADERS)
    assert reply.status_code == 503, reply.text
    assert gw.stored_blobs() == []
    assert (await gw.client.get("/v1/documents")).json()["data"] == []
