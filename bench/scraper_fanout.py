"""Scrape fan-out: 100 URLs in one Scrape should take about as long as one URL.

A local HTTP server answers every request after 200 ms with a distinct small article. The
scraper runs as its own process (`python -m scraper`, SCRAPER_ALLOW_PRIVATE_NETWORKS=true so
the SSRF guard lets loopback through; every URL still goes through the guard, the fetch and
the extraction pool). Baseline: one URL per Scrape (median of several). Measured: 100
distinct URLs in one Scrape (median of several). Target: ratio <= 1.5.

    .venv/bin/python bench/scraper_fanout.py [--urls 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from genai.scraper.v1 import scraper_pb2, scraper_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
DELAY = 0.2
TARGET = 1.5
_serial = itertools.count()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def page(path: str) -> bytes:
    paragraphs = "".join(
        f"<p>Paragraph {k} of the story at {path}: the harbour committee reviewed item {k} of its plan "
        f"for the waterfront, and the vote on it was postponed until the next session.</p>" for k in range(6)
    )
    return (f"<html><head><title>Story {path}</title></head><body><nav><a href='/'>Home</a></nav>"
            f"<article><h1>Story {path}</h1>{paragraphs}</article><footer>Copyright</footer></body></html>").encode()


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """HTTP/1.1 keep-alive responder: every answer comes DELAY seconds after its request."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            await asyncio.sleep(DELAY)
            body = page(path)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass  # the client closed the connection, or the bench is over
    finally:
        writer.close()


async def wait_serving(address: str, process: asyncio.subprocess.Process, within: float = 90) -> None:
    deadline = time.monotonic() + within
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"scraper exited with {process.returncode}")
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError("scraper did not become ready")


def cpu_seconds(process: psutil.Process) -> float:
    """CPU time used so far by the scraper and its extraction workers."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def timed_scrape(stub: scraper_pb2_grpc.ScraperServiceStub, base: str, count: int) -> float:
    urls = [f"{base}/story/{next(_serial)}" for _ in range(count)]
    started = time.perf_counter()
    reply = await stub.Scrape(scraper_pb2.ScrapeRequest(urls=urls), timeout=60)
    elapsed = time.perf_counter() - started
    bad = [p for p in reply.pages if p.outcome != scraper_pb2.OUTCOME_OK or "harbour committee" not in p.text]
    if bad:
        raise RuntimeError(f"{len(bad)} of {count} pages failed: {bad[0].outcome} {bad[0].reason}")
    return elapsed


async def bench(urls: int, runs: int) -> int:
    site = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
    site_port = site.sockets[0].getsockname()[1]
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "SCRAPER_PORT": str(port), "SCRAPER_METRICS_PORT": str(metrics_port),
           "SCRAPER_ALLOW_PRIVATE_NETWORKS": "true", "SCRAPER_ALLOWED_PORTS": str(site_port), "LOG_LEVEL": "WARNING"}
    log = tempfile.NamedTemporaryFile(prefix="scraper-bench-", suffix=".log", delete=False)
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "scraper", env=env, cwd=ROOT, stdout=log,
                                                   stderr=asyncio.subprocess.STDOUT)
    try:
        address = f"127.0.0.1:{port}"
        await wait_serving(address, process)
        base = f"http://127.0.0.1:{site_port}"
        async with grpc.aio.insecure_channel(address) as channel:
            stub = scraper_pb2_grpc.ScraperServiceStub(channel)
            await timed_scrape(stub, base, urls)  # warm-up: connections, pool workers
            singles = [await timed_scrape(stub, base, 1) for _ in range(max(5, runs))]
            cpu_before = cpu_seconds(psutil.Process(process.pid))
            fanouts = [await timed_scrape(stub, base, urls) for _ in range(runs)]
            cpu_per_fanout = (cpu_seconds(psutil.Process(process.pid)) - cpu_before) / runs
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:  # never leave a scraper behind
            process.kill()
            await process.wait()
        site.close()
        log.close()
    baseline, fanout = statistics.median(singles), statistics.median(fanouts)
    ratio = fanout / baseline
    print(f"scraper fan-out, server delay {DELAY * 1000:.0f} ms, medians")
    print("| case                         | seconds | runs |")
    print("| ---------------------------- | ------- | ---- |")
    print(f"| 1 URL per Scrape (baseline)  | {baseline:7.3f} | {len(singles):4d} |")
    print(f"| {urls} URLs in one Scrape       | {fanout:7.3f} | {len(fanouts):4d} |")
    print(f"scraper CPU (process + workers) per {urls}-URL Scrape: {cpu_per_fanout:.3f} s; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"ratio {ratio:.2f}x (target <= {TARGET}x); all runs: single "
          f"{', '.join(f'{s:.3f}' for s in singles)}; fan-out {', '.join(f'{s:.3f}' for s in fanouts)}")
    if ratio > TARGET:
        print(f"FAIL: ratio {ratio:.2f} > {TARGET}")
        return 1
    print("PASS")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=100)
    parser.add_argument("--runs", type=int, default=0, help="fan-out runs (default 3, or 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer runs (what `make bench` uses)")
    args = parser.parse_args()
    return asyncio.run(bench(args.urls, args.runs or (2 if args.quick else 3)))


if __name__ == "__main__":
    sys.exit(main())
