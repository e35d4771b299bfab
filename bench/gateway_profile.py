"""Where the gateway's CPU goes under load: py-spy samples the running gateway process while this
process drives one of the loads of `gateway_overhead.py`, and the samples are summed by layer.

Each sample (a stack holding the GIL) is charged to the layer of its innermost frame that belongs
to a known layer (JSON, pydantic, the LLM client, FastAPI, uvicorn...), so a `json.dumps` called by
Starlette counts as JSON. The gateway's CPU time over the window, divided by the chats served,
gives microseconds per chat; each layer's share of the samples splits it.

    .venv/bin/python bench/gateway_profile.py [--load capacity|concurrent|stream] [--seconds 15] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import psutil
import uvloop
from _gateway_stack import BenchStack
from _loadgen import closed_loop
from gateway_overhead import CHUNK_INTERVAL, CHUNKS, LLM_DELAY, WIDTH, chat

# A sample with any frame in the outbound LLM client is the client's, whatever library its innermost
# frame is in (its sockets, its JSON); the sub-layer names that innermost library.
CLIENT = ("/gateway/llm", "/openai/", "/httpx", "/httpcore", "/aiohttp/", "/h11/")
# Otherwise the innermost frame in a known layer wins; fragments of full file paths, tried in order.
LAYERS = (
    ("/gateway/middleware", "gateway: request-context middleware"),
    ("/gateway/", "gateway: chat route, answering, other"),
    ("/json/", "JSON (stdlib)"), ("orjson", "JSON (orjson)"),
    ("/pydantic", "pydantic (validation, dumps)"),
    ("/logging/", "logging"), ("genai_common/logging", "logging"),
    ("/prometheus_client/", "prometheus metrics"),
    ("/httpcore", "httpcore (pool, HTTP/1.1)"), ("/httpx", "httpx"), ("/h11/", "h11"),
    ("/openai/", "openai SDK"), ("/aiohttp/", "aiohttp"), ("/yarl/", "aiohttp"), ("/multidict/", "aiohttp"),
    ("/anyio/", "anyio (task groups, cancel scopes, streams)"),
    ("/fastapi/", "FastAPI (routing, dependencies, body)"),
    ("/starlette/", "Starlette (requests, responses, middleware)"),
    ("/uvicorn/", "uvicorn (inbound HTTP)"),
    ("/asyncio/", "event loop (asyncio)"), ("uvloop", "event loop (asyncio)"),
)


def layer_of(frames: list[str]) -> str:
    """The layer of a stack (outermost frame first)."""
    in_client = any(marker in frame for frame in frames for marker in CLIENT)
    for frame in reversed(frames):
        for fragment, layer in LAYERS:
            if fragment in frame:
                return f"LLM client: {layer}" if in_client else layer
    return "LLM client: other" if in_client else "other (stdlib, C calls)"


def read_raw(path: Path) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    """Samples by layer, by innermost function and by function anywhere on the stack (inclusive),
    from py-spy's raw (collapsed) output."""
    layers: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for text in path.read_text().splitlines():
        stack, _, count = text.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        total += n
        layers[layer_of(frames)] += n
        leaves[_short(frames[-1])] += n
        for function in {_short(frame) for frame in frames}:
            inclusive[function] += n
    return layers, leaves, inclusive, total


def _short(frame: str) -> str:
    function, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{function} ({where})"


async def drive(port: int, request: bytes, seconds: float, pid: int, out: Path) -> tuple[int, float]:
    """Load for `seconds` while py-spy records the gateway; (chats served, gateway CPU seconds)."""
    gateway = psutil.Process(pid)
    await closed_loop(port, request, connections=WIDTH, seconds=1.0)  # warm up
    cpu_before = sum(gateway.cpu_times()[:2])
    spy = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--duration", str(int(seconds)),
        "--rate", "250", "--format", "raw", "--gil", "--full-filenames", "--nolineno",
        "--output", str(out), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    samples, _ = await closed_loop(port, request, connections=WIDTH, seconds=seconds)
    cpu = sum(gateway.cpu_times()[:2]) - cpu_before
    await spy.wait()
    return len(samples), cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--load", choices=("capacity", "concurrent", "stream"), default="capacity")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--quick", action="store_true", help="a 5-second window (make bench)")
    parser.add_argument("--top", type=int, default=15, help="innermost functions to list")
    parser.add_argument("--inclusive", type=int, default=0, help="functions to list with what they call")
    args = parser.parse_args()
    seconds = 5.0 if args.quick else args.seconds
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp_dir:
        procs = BenchStack(stack, Path(tmp_dir))
        if args.load == "stream":
            llm = procs.fake_llm(delay=CHUNK_INTERVAL, chunks=CHUNKS, interval=CHUNK_INTERVAL)
        else:
            llm = procs.fake_llm(delay=LLM_DELAY if args.load == "concurrent" else 0.0)
        gateway = procs.gateway(llm)
        out = Path(tmp_dir) / "profile.txt"
        request = chat(gateway.gateway_port, stream=args.load == "stream", through_gateway=True)
        chats, cpu = uvloop.run(drive(gateway.gateway_port, request, seconds, gateway.gateway.process.pid, out))
        layers, leaves, inclusive, total = read_raw(out)
    per_chat = cpu / max(1, chats) * 1e6
    print(f"load: {args.load}, {WIDTH} concurrent, {seconds:g} s: {chats / seconds:,.0f} chats/s; gateway CPU "
          f"{cpu / seconds * 100:.0f} % of a core, {per_chat:,.0f} us per chat; {total} samples")
    print(f"{'layer':<46} {'share':>6} {'us/chat':>8}")
    for layer, n in layers.most_common():
        print(f"{layer:<46} {n / total * 100:>5.1f}% {per_chat * n / total:>8.0f}")
    print(f"\ninnermost functions (top {args.top}):")
    for function, n in leaves.most_common(args.top):
        print(f"  {n / total * 100:>5.1f}%  {function}")
    print(f"\nfunctions with what they call (top {args.inclusive}):")
    for function, n in inclusive.most_common(args.inclusive):
        print(f"  {n / total * 100:>5.1f}% {per_chat * n / total:>6.0f} us  {function}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
