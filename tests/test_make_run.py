"""`make run`'s launcher brings the whole platform up on one machine, serves a user end to end,
and stops every process cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.eventually import eventually
from tests.support.procs import OFFLINE_ENV, ROOT, free_port

PAGE = b"""<html><head><title>Harbour opening hours</title></head><body><article>
<h1>Harbour opening hours</h1>
<p>The old harbour museum opens at nine in the morning and closes at five in the evening,
every day except Mondays. Guided tours of the lighthouse start at eleven and last an hour.</p>
<p>Tickets cost twelve euros for adults; children under twelve enter free of charge.</p>
</article></body></html>"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/harbour"
    server.shutdown()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, page_url: str,
          rabbit_url: str) -> Iterator[tuple[str, subprocess.Popen]]:
    state = tmp_path_factory.mktemp("stack")
    port = free_port()
    page_port = page_url.split(":")[2].split("/")[0]
    env = {
        **os.environ, **OFFLINE_ENV, "AMQP_URL": rabbit_url, "GENAI_STATE_DIR": str(state), "GATEWAY_PORT": str(port),
        "SCRAPER_PORT": str(free_port()), "SCRAPER_METRICS_PORT": str(free_port()),
        "RETRIEVER_PORT": str(free_port()), "RETRIEVER_METRICS_PORT": str(free_port()),
        "INGEST_METRICS_PORT": str(free_port()), "IMAGEGEN_METRICS_PORT": str(free_port()),
        "SCRAPER_ALLOW_PRIVATE_NETWORKS": "true", "SCRAPER_ALLOWED_PORTS": f"80,443,{page_port}",
    }
    env.pop("LLM_BASE_URL", None)
    proc = subprocess.Popen([sys.executable, "scripts/devstack.py"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    deadline = time.monotonic() + 300
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            pytest.fail("make run's launcher exited early:\n" + "".join(output) + _logs(state))
        output.append(line)
        if "genai is up" in line:
            break
    else:
        proc.kill()
        pytest.fail("the platform was not up within 300 s:\n" + "".join(output) + _logs(state))
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.kill()


def _logs(state: Path) -> str:
    logs = sorted((state / "var" / "logs").glob("*.log"))
    return "".join(f"\n--- {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in logs)


async def test_chat_reads_the_page_and_an_uploaded_document(stack: tuple[str, subprocess.Popen],
                                                           page_url: str) -> None:
    url, _ = stack
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        doc = b"Staff handbook.\n\nEvery employee receives twenty-eight days of paid annual leave per calendar year.\n"
        created = await http.post("/v1/documents", files={"file": ("handbook.txt", doc, "text/plain")})
        assert created.status_code == 202, created.text
        doc_id = created.json()["id"]

        async def status() -> str:
            return (await http.get(f"/v1/documents/{doc_id}")).json()["status"]

        await eventually(status, lambda now: now == "indexed", within=120, every=0.2, what="the document indexed")

    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused")
    question = f"How many days of annual leave do staff get, and when does {page_url} say the museum opens?"
    reply = await client.chat.completions.create(model="retrieval-only",
                                                 messages=[{"role": "user", "content": question}])
    text = reply.choices[0].message.content or ""
    sources = (reply.model_extra or {})["sources"]
    kinds = {s["kind"] for s in sources}
    assert kinds == {"url", "document"}, sources
    assert "twenty-eight days" in text and "nine in the morning" in text


async def test_image_job_finishes_with_pngs(stack: tuple[str, subprocess.Popen]) -> None:
    url, _ = stack
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        job = await http.post("/v1/jobs/images", json={"prompt": "a lighthouse", "n": 2, "size": "64x64", "steps": 2})
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]

        async def current() -> dict:
            return (await http.get(f"/v1/jobs/{job_id}")).json()

        done = await eventually(current, lambda j: j["status"] in ("succeeded", "failed"), within=120, every=0.2,
                                what="the image job finished")
        assert done["status"] == "succeeded", done
        png = await http.get(f"/v1/jobs/{job_id}/images/0")
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_sigterm_stops_every_service_and_exits_zero(stack: tuple[str, subprocess.Popen]) -> None:
    url, proc = stack
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=90) == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/healthz", timeout=2)
