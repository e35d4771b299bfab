"""`make run`: the whole platform on one machine, as processes with readiness waits.

Starts the retriever, scraper, ingest, imagegen and the gateway with the embedded defaults
(SQLite, local Qdrant, blobs under ./var, the local RabbitMQ), waits until each is ready,
prints the gateway URL, and stops everything cleanly on Ctrl-C or SIGTERM (reverse order,
SIGTERM first, SIGKILL only after a grace period). If any service dies, the rest are stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
# Where the services keep their state (./var: SQLite, Qdrant, blobs, logs). GENAI_STATE_DIR moves it.
STATE = Path(os.environ.get("GENAI_STATE_DIR", ROOT)).resolve()
LOGS = STATE / "var" / "logs"
READY_TIMEOUT = 300.0
STOP_GRACE = 30.0


@dataclass(frozen=True)
class Spec:
    name: str
    module: str
    grpc_addr: str | None = None
    ready_url: str | None = None


def specs(env: dict[str, str]) -> list[Spec]:
    return [
        Spec("retriever", "retriever", grpc_addr=env["RETRIEVER_ADDR"]),
        Spec("scraper", "scraper", grpc_addr=env["SCRAPER_ADDR"]),
        Spec("ingest", "ingest", ready_url=f"http://127.0.0.1:{env['INGEST_METRICS_PORT']}/readyz"),
        Spec("imagegen", "imagegen", ready_url=f"http://127.0.0.1:{env['IMAGEGEN_METRICS_PORT']}/readyz"),
        Spec("gateway", "gateway", ready_url=f"http://{env['GATEWAY_HOST']}:{env['GATEWAY_PORT']}/readyz"),
    ]


def stack_env() -> dict[str, str]:
    env = dict(os.environ)
    defaults = {
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
        "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": "8000",
        "SCRAPER_PORT": "50051", "SCRAPER_METRICS_PORT": "9101",
        "RETRIEVER_PORT": "50052", "RETRIEVER_METRICS_PORT": "9102",
        "INGEST_METRICS_PORT": "9103", "IMAGEGEN_METRICS_PORT": "9104",
        "IMAGEGEN_MODEL": "tiny-random",
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    env.setdefault("SCRAPER_ADDR", f"127.0.0.1:{env['SCRAPER_PORT']}")
    env.setdefault("RETRIEVER_ADDR", f"127.0.0.1:{env['RETRIEVER_PORT']}")
    return env


async def grpc_serving(address: str) -> bool:
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.aio.AioRpcError:
        return False


async def http_ready(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url, timeout=1)).status_code == 200
    except httpx.HTTPError:
        return False


class Stack:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    async def start(self, spec: Spec) -> None:
        log = (LOGS / f"{spec.name}.log").open("ab")
        self.procs[spec.name] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", spec.module, cwd=STATE, env=self.env, stdout=log, stderr=asyncio.subprocess.STDOUT,
        )

    async def wait_ready(self, spec: Spec, client: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        proc = self.procs[spec.name]
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"{spec.name} exited with {proc.returncode}; see var/logs/{spec.name}.log")
            if spec.grpc_addr:
                ok = await grpc_serving(spec.grpc_addr)
            else:
                ok = await http_ready(client, spec.ready_url or "")
            if ok:
                print(f"  {spec.name:<10} ready", flush=True)
                return
            await asyncio.sleep(0.25)
        raise TimeoutError(f"{spec.name} not ready after {READY_TIMEOUT:.0f}s; see var/logs/{spec.name}.log")

    async def stop(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), STOP_GRACE)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            print(f"  {name:<10} stopped ({proc.returncode})", flush=True)

    async def first_exit(self) -> str:
        waits = {asyncio.ensure_future(p.wait()): n for n, p in self.procs.items()}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return waits[next(iter(done))]


async def main() -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    env = stack_env()
    stack = Stack(env)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print("starting genai (logs in var/logs/) ...", flush=True)
    code = 0
    try:
        async with httpx.AsyncClient() as client:
            for spec in specs(env):
                await stack.start(spec)
            ready = asyncio.gather(*(stack.wait_ready(s, client) for s in specs(env)))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({ready, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not stop.is_set():
                await ready
                url = f"http://{env['GATEWAY_HOST']}:{env['GATEWAY_PORT']}"
                print(f"\ngenai is up: {url}  (OpenAI base URL {url}/v1)\nCtrl-C stops it.\n", flush=True)
                died = asyncio.ensure_future(stack.first_exit())
                await asyncio.wait({died, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if died.done():
                    print(f"{died.result()} exited unexpectedly; stopping the rest", file=sys.stderr)
                    code = 1
            else:
                ready.cancel()
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    finally:
        print("stopping ...", flush=True)
        await stack.stop()
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
