"""What the gateway adds to a chat call, measured against calling the LLM server directly.

FakeLLM (answers instantly) and the gateway (`python -m gateway` on uvicorn) run as processes.
Baseline: `openai.AsyncOpenAI` straight to FakeLLM. Measured: the same calls through the gateway,
non-streaming, with `genai: {rag: false, scrape: false}` so only the gateway's own work counts
(HTTP hop, API key check, validation, prompt assembly, the gateway's LLM client). Sequential
calls are interleaved one baseline / one gateway so both see the same machine noise; then
64 concurrent. A last line, for information, runs the default RAG path against a real retriever
over an empty store (the query embedding dominates it).

    .venv/bin/python bench/gateway_overhead.py [--quick] [--no-rag]

Exits non-zero if the gateway adds more than 2 ms at p50 (sequential).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[1]
# The checkout on sys.path (for tests.support) before the imports below, hence their `noqa: E402`.
sys.path.insert(0, str(ROOT))

from tests.support import rabbitmq  # noqa: E402
from tests.support.procs import Service, free_port, grpc_serving, http_ok  # noqa: E402

TARGET_ADDED_P50_MS = 2.0
API_KEY = "sk-bench"
MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]
NO_RAG = {"genai": {"rag": False, "scrape": False}}

Call = Callable[[], Awaitable[object]]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def start(module: str, env: dict[str, str], log: Path, ready: Callable[[], bool], stack: ExitStack,
          timeout: float = 120.0) -> Service:
    service = Service(module, {**env, "CWD": str(ROOT)}, log)
    stack.callback(service.terminate)
    service.wait_until(ready, timeout)
    return service


async def timed(call: Call) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def sequential(baseline: Call, gateway: Call, n: int) -> tuple[list[float], list[float]]:
    base, gate = [], []
    for _ in range(n):
        base.append(await timed(baseline))
        gate.append(await timed(gateway))
    return base, gate


async def concurrent(call: Call, n: int, width: int) -> list[float]:
    slots = asyncio.Semaphore(width)

    async def one() -> float:
        async with slots:
            return await timed(call)

    return list(await asyncio.gather(*(one() for _ in range(n))))


def row(name: str, base: list[float], gate: list[float]) -> tuple[str, float]:
    b50, b99, g50, g99 = percentile(base, .5), percentile(base, .99), percentile(gate, .5), percentile(gate, .99)
    line = (f"{name:<34} {b50:>8.2f} {b99:>8.2f} {g50:>9.2f} {g99:>9.2f} {g50 - b50:>+9.2f} {g99 - b99:>+9.2f}"
            f" {g50 / b50:>7.2f}x")
    return line, g50 - b50


async def measure(llm_url: str, gateway_url: str, rag_url: str | None, n_seq: int,
                  n_conc: int) -> tuple[list[str], float]:
    direct = openai.AsyncOpenAI(base_url=llm_url, api_key="unused", max_retries=0, timeout=30)
    through = openai.AsyncOpenAI(base_url=gateway_url, api_key=API_KEY, max_retries=0, timeout=30)

    def baseline() -> Awaitable[object]:
        return direct.chat.completions.create(model="fake-model", messages=MESSAGES)

    def gateway() -> Awaitable[object]:
        return through.chat.completions.create(model="fake-model", messages=MESSAGES, extra_body=NO_RAG)

    await sequential(baseline, gateway, 50)  # warm up connections, caches, code paths
    base, gate = await sequential(baseline, gateway, n_seq)
    seq_line, added_p50 = row(f"sequential, no RAG ({n_seq} calls)", base, gate)
    lines = [seq_line]
    await concurrent(baseline, 128, 64)
    await concurrent(gateway, 128, 64)
    conc_base = await concurrent(baseline, n_conc, 64)
    conc_gate = await concurrent(gateway, n_conc, 64)
    lines.append(row(f"64 concurrent, no RAG ({n_conc} calls)", conc_base, conc_gate)[0])
    if rag_url:
        rag = openai.AsyncOpenAI(base_url=rag_url, api_key=API_KEY, max_retries=0, timeout=30)

        def with_rag() -> Awaitable[object]:
            return rag.chat.completions.create(model="fake-model", messages=MESSAGES)

        await sequential(baseline, with_rag, 20)
        base, gate = await sequential(baseline, with_rag, max(50, n_seq // 3))
        lines.append(row(f"sequential, RAG, empty store ({len(gate)})", base, gate)[0] + "  (info)")
        await rag.close()
    await direct.close()
    await through.close()
    return lines, added_p50


def gateway_env(llm_port: int, port: int, tmp: Path, retriever: str, amqp_url: str) -> dict[str, str]:
    return {"GATEWAY_PORT": str(port), "AMQP_URL": amqp_url, "LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
            "LLM_MODEL": "fake-model", "GATEWAY_API_KEYS": API_KEY, "SCRAPER_ADDR": f"127.0.0.1:{free_port()}",
            "RETRIEVER_ADDR": retriever,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/gateway-{port}.db", "BLOB_STORE_URL": f"file://{tmp}/blobs"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls, no RAG line")
    parser.add_argument("--no-rag", action="store_true", help="skip the RAG line (it starts the retriever)")
    args = parser.parse_args()
    n_seq, n_conc = (100, 320) if args.quick else (300, 640)
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        # A throw-away vhost: queues other runs left on the broker cannot stop the gateway starting.
        amqp_url = (stack.enter_context(rabbitmq.temporary_vhost("bench-gateway")) if rabbitmq.available()
                    else os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
        llm_port, gw_port = free_port(), free_port()
        start("tests.fakes.fake_llm", {"FAKE_LLM_PORT": str(llm_port)}, tmp / "llm.log",
              lambda: http_ok(f"http://127.0.0.1:{llm_port}/v1/models"), stack)
        start("gateway", gateway_env(llm_port, gw_port, tmp, f"127.0.0.1:{free_port()}", amqp_url), tmp / "gateway.log",
              lambda: http_ok(f"http://127.0.0.1:{gw_port}/readyz"), stack)
        rag_url = None
        if not (args.quick or args.no_rag):
            r_port, rag_port = free_port(), free_port()
            start("retriever", {"RETRIEVER_PORT": str(r_port), "RETRIEVER_METRICS_PORT": str(free_port()),
                                "QDRANT_PATH": ":memory:"}, tmp / "retriever.log",
                  lambda: grpc_serving(f"127.0.0.1:{r_port}"), stack, timeout=300)
            start("gateway", gateway_env(llm_port, rag_port, tmp, f"127.0.0.1:{r_port}", amqp_url),
                  tmp / "gateway-rag.log",
                  lambda: http_ok(f"http://127.0.0.1:{rag_port}/readyz"), stack)
            rag_url = f"http://127.0.0.1:{rag_port}/v1"
        lines, added_p50 = asyncio.run(measure(f"http://127.0.0.1:{llm_port}/v1", f"http://127.0.0.1:{gw_port}/v1",
                                               rag_url, n_seq, n_conc))
    print(f"{'ms per call':<34} {'direct':>8} {'':>8} {'gateway':>9} {'':>9} {'added':>9} {'':>9} {'ratio':>8}")
    print(f"{'':<34} {'p50':>8} {'p99':>8} {'p50':>9} {'p99':>9} {'p50':>9} {'p99':>9} {'p50':>8}")
    for line in lines:
        print(line)
    ok = added_p50 <= TARGET_ADDED_P50_MS
    print(f"\ngateway adds {added_p50:.2f} ms at p50 (sequential); target <= {TARGET_ADDED_P50_MS} ms: "
          f"{'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
