"""The `genai` command against the running one-machine stack (`make run`'s launcher, real services).

What a user would notice: a folder with a broken PDF uploads, each document's fate is shown and
the exit status says something failed; images land in the folder asked for; a text batch ends
with one JSON result a line; a chat answer streams in before it is finished and names its
sources; Ctrl-C on an image job asks, and cancels when told to; a missing or wrong key is one
readable line, never a traceback.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support.sample_pdfs import ingest_pdfs
from tests.support.stack import RunningStack

pytestmark = pytest.mark.slow

GENAI = Path(sys.executable).with_name("genai")  # installed by `make venv` ([project.scripts])
Run = Callable[..., subprocess.CompletedProcess[str]]


def _env(stack: RunningStack, key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GENAI_API_KEY", "GENAI_URL")}
    env.update(GENAI_URL=stack.url, COLUMNS="200", PYTHONUNBUFFERED="1")
    if key is not None:
        env["GENAI_API_KEY"] = key
    return env


@pytest.fixture
def genai(one_machine_stack: RunningStack) -> Run:
    def run(*args: str, key: str | None = one_machine_stack.api_key,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(GENAI), *args], env=_env(one_machine_stack, key), capture_output=True, text=True,
                              timeout=timeout)
        assert "Traceback" not in done.stderr, done.stderr
        return done
    return run


def _line(output: str, name: str) -> str:
    return next(line for line in reversed(output.splitlines()) if name in line)


def test_uploading_a_folder_with_a_broken_pdf_reports_each_document_and_fails(genai: Run, tmp_path: Path) -> None:
    folder = tmp_path / "handbooks"
    (folder / "notes").mkdir(parents=True)
    (folder / "staff-handbook.pdf").write_bytes(ingest_pdfs().text_pdf(
        ["Staff handbook. Every employee receives twenty-eight days of paid annual leave per calendar year."]))
    (folder / "notes" / "parking.md").write_text("# Parking\n\nThe staff car park closes at eight in the evening.\n")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R\n"
                                        b"this is not a PDF any more")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # not a document: a folder upload skips it

    done = genai("docs", "upload", str(folder))

    assert done.returncode == 1, done.stdout + done.stderr
    assert "indexed" in _line(done.stdout, "staff-handbook.pdf")
    assert "indexed" in _line(done.stdout, "parking.md")
    broken = _line(done.stdout, "broken.pdf")
    assert "failed" in broken and len(broken.split("failed", 1)[1].strip()) > 5, broken  # with the reason
    assert "photo.png" not in done.stdout
    assert "3 files: 2 indexed, 1 failed" in done.stdout

    listed = {d["name"]: d for d in json.loads(genai("docs", "ls", "--json").stdout)}
    assert listed["staff-handbook.pdf"]["status"] == "indexed" and listed["broken.pdf"]["status"] == "failed"
    hits = json.loads(genai("search", "how many days of paid annual leave", "--json").stdout)
    assert hits[0]["name"] == "staff-handbook.pdf"

    removed = genai("docs", "rm", listed["broken.pdf"]["id"])
    assert removed.returncode == 0 and f"deleted {listed['broken.pdf']['id']}" in removed.stdout
    assert "broken.pdf" not in {d["name"] for d in json.loads(genai("docs", "ls", "--json").stdout)}


def test_an_image_job_saves_its_pngs_to_the_folder(genai: Run, tmp_path: Path) -> None:
    out = tmp_path / "pictures"
    done = genai("images", "a lighthouse at dawn", "-n", "2", "--size", "512x512", "--steps", "4", "--seed", "7",
                 "--out", str(out))

    assert done.returncode == 0, done.stdout + done.stderr
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 2 and all(f"saved {p}" in done.stdout for p in pngs)
    assert {Image.open(io.BytesIO(p.read_bytes())).size for p in pngs} == {(512, 512)}
    assert "succeeded 100%" in done.stdout  # the event stream's last word, shown as the bar's end


def test_a_text_batch_shows_a_board_and_writes_jsonl_results(genai: Run, tmp_path: Path) -> None:
    prompts = tmp_path / "questions.jsonl"
    prompts.write_text("\n".join(json.dumps(p) for p in [
        {"prompt": "Name a lighthouse.", "ref": "a1"}, "Name a harbour.", {"prompt": "Name a museum.", "ref": "c3"}]))
    done = genai("text", str(prompts), "--out", str(tmp_path / "answers.jsonl"))

    assert done.returncode == 0, done.stdout + done.stderr
    results = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in results] == ["Name a lighthouse.", "Name a harbour.", "Name a museum."]
    assert [r.get("ref") for r in results] == ["a1", None, "c3"]  # the caller's own keys come back
    assert all(r["status"] == "succeeded" and r["output_text"].startswith("Fake answer") for r in results)
    assert "3 jobs: 3 succeeded" in done.stdout
    assert "succeeded" in _line(done.stdout, "1. Name a lighthouse.")

    listed = {j["id"] for j in json.loads(genai("jobs", "ls", "--json").stdout)}
    assert {r["job_id"] for r in results} <= listed
    watched = genai("jobs", "watch", results[0]["job_id"])
    assert watched.returncode == 0 and "1 jobs: 1 succeeded" in watched.stdout


def test_chat_streams_the_answer_then_its_numbered_sources(one_machine_stack: RunningStack) -> None:
    llm = one_machine_stack.llm
    llm.reset()
    llm.stream_interval, llm.filler_tokens = 0.1, 20  # a few seconds of streaming after the first words
    question = f"When does {one_machine_stack.site}/harbour say the museum opens?"
    env = _env(one_machine_stack, one_machine_stack.api_key)
    proc = subprocess.Popen([str(GENAI), "chat", question, "--no-rag"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.read(len("Fake answer."))
        assert first == "Fake answer." and llm.streams_completed == 0  # shown while the answer still streams
        rest = proc.stdout.read()
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        llm.reset()
    assert "Sources seen: [1]" in rest
    assert f"[1] Harbour opening hours — {one_machine_stack.site}/harbour" in rest.split("Sources:", 1)[1]


def test_ctrl_c_on_an_image_job_asks_and_cancels_it(one_machine_stack: RunningStack, tmp_path: Path) -> None:
    proc = subprocess.Popen([str(GENAI), "images", "a slow harbour", "-n", "4", "--size", "1024x1024", "--steps", "100",
                             "--out", str(tmp_path)], env=_env(one_machine_stack, one_machine_stack.api_key),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    job_id = proc.stdout.readline().split()[2].rstrip(":")  # "image job <id>: 4 × 1024x1024"
    auth = {"Authorization": f"Bearer {one_machine_stack.api_key}"}
    http = httpx.Client(base_url=one_machine_stack.url, headers=auth)
    with http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=60) as events:
        for line in events.iter_lines():
            if line.startswith("data:") and json.loads(line[5:])["status"] == "running":
                break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate("y\n", timeout=60)

    assert proc.returncode == 130, out + err
    assert f"Cancel job {job_id}?" in err and "Traceback" not in err
    assert f"job {job_id}: cancelled" in out
    assert http.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    assert not list(tmp_path.glob("*.png"))


def test_a_missing_or_wrong_key_is_one_clear_line(genai: Run) -> None:
    missing = genai("docs", "ls", key=None)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip() == "error: 401 missing API key: send Authorization: Bearer <key>"
    wrong = genai("jobs", "ls", key="not-the-key")
    assert wrong.returncode == 1 and wrong.stderr.strip() == "error: 401 invalid API key"
