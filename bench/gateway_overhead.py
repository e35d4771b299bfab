"""What the gateway adds to a chat, measured against calling the LLM server directly, under load.

Three processes: this one generates the load (`bench/_loadgen.py`: keep-alive connections, a
bare asyncio protocol); a FakeFastLLM (`tests/fakes/fake_llm_fast.py`) answers; the gateway
(`python -m gateway` on uvicorn, API keys on) sits in front of it. Chats carry
`genai: {rag: false, scrape: false}`, so only the gateway's own work counts (HTTP hop, key check,
validation, prompt assembly, its LLM client, relaying). Direct and gateway runs alternate, so both
see the same machine noise; every ratio is against the direct figure of the same run.

| load | target |
| --- | --- |
| sequential, instant LLM | gateway adds <= 2 ms at p50 |
| 64 concurrent, LLM answers after 200 ms | gateway p50 <= 1.1x direct (check: direct p50 within 5 % of 200 ms) |
| 64 concurrent streams, 8 chunks 20 ms apart (the first too) | total p50 <= 1.15x, TTFT p50 <= 1.5x |
| capacity: 64 concurrent, instant LLM | chats/s >= 30 % of a hello-world FastAPI app's requests/s |

    .venv/bin/python bench/gateway_overhead.py [--quick] [--rag]

`--rag` adds an information line: the default RAG path against a real retriever over an empty
store (the query embedding dominates it). Exits non-zero when a target or the check is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import uvloop
from _gateway_stack import API_KEY, BenchStack
from _loadgen import Sample, closed_loop, connect, percentile, post

MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]
NO_RAG = {"genai": {"rag": False, "scrape": False}}
WIDTH = 64
LLM_DELAY, CHUNKS, CHUNK_INTERVAL = 0.2, 8, 0.02


@dataclass(frozen=True)
class Sizes:
    sequential: int
    rounds: int           # alternating direct/gateway rounds of each concurrent load
    per_round: int        # requests per round (WIDTH connections)
    capacity_rounds: int  # alternating gateway/hello-world rounds: short, so both see the same machine
    seconds: float        # per capacity round


QUICK, FULL = Sizes(100, 2, 320, 6, 1.0), Sizes(300, 4, 640, 12, 2.0)


@dataclass
class Report:
    lines: list[str]
    failures: list[str]

    def target(self, what: str, value: float, limit: float, *, at_least: bool = False, unit: str = "x") -> None:
        ok = value >= limit if at_least else value <= limit
        self.lines.append(f"  {what}: {value:.2f}{unit} (target {'>=' if at_least else '<='} {limit}{unit}) "
                          f"{'met' if ok else 'MISSED'}")
        if not ok:
            self.failures.append(what)


def chat(port: int, *, stream: bool = False, through_gateway: bool = False, rag: bool = False) -> bytes:
    body: dict[str, object] = {"model": "fake-model", "messages": MESSAGES}
    if stream:
        body["stream"] = True
    if not through_gateway:
        return post(port, "/v1/chat/completions", body)
    return post(port, "/v1/chat/completions", body if rag else {**body, **NO_RAG},
                {"Authorization": f"Bearer {API_KEY}"})


def ms(samples: list[Sample], q: float, first_byte: bool = False) -> float:
    return percentile([s.first_byte if first_byte else s.total for s in samples], q) * 1000


def line(name: str, direct: list[float], gateway: list[float]) -> str:
    d50, d99, g50, g99 = (percentile(direct, .5), percentile(direct, .99), percentile(gateway, .5),
                          percentile(gateway, .99))
    return (f"{name:<40} {d50:>8.2f} {d99:>8.2f} {g50:>8.2f} {g99:>8.2f} {g50 - d50:>+8.2f} {g50 / d50:>6.2f}x")


async def sequential(direct_port: int, gateway_port: int, n: int, report: Report, rag: bool = False) -> None:
    direct, gateway = await connect(direct_port), await connect(gateway_port)
    d_req, g_req = chat(direct_port), chat(gateway_port, through_gateway=True, rag=rag)
    base: list[float] = []
    gate: list[float] = []
    for i in range(n + 50):  # the first 50 warm up connections, caches, code paths
        d, g = await direct.send(d_req), await gateway.send(g_req)
        if i >= 50:
            base.append(d.total * 1000)
            gate.append(g.total * 1000)
    direct.close()
    gateway.close()
    name = "sequential, RAG, empty store (info)" if rag else "sequential, instant LLM"
    report.lines.append(line(f"{name} ({n})", base, gate))
    if not rag:
        report.target("sequential: added p50", percentile(gate, .5) - percentile(base, .5), 2.0, unit=" ms")


async def alternate(direct: tuple[int, bytes], gateway: tuple[int, bytes],
                    sizes: Sizes) -> tuple[list[Sample], list[Sample]]:
    """Rounds of WIDTH concurrent requests, direct then gateway, after a warm-up round of each."""
    base: list[Sample] = []
    gate: list[Sample] = []
    for round_ in range(sizes.rounds + 1):
        d, _ = await closed_loop(direct[0], direct[1], connections=WIDTH, requests=sizes.per_round)
        g, _ = await closed_loop(gateway[0], gateway[1], connections=WIDTH, requests=sizes.per_round)
        if round_:
            base += d
            gate += g
    return base, gate


async def concurrent(llm_port: int, gateway_port: int, sizes: Sizes, report: Report) -> None:
    base, gate = await alternate((llm_port, chat(llm_port)), (gateway_port, chat(gateway_port, through_gateway=True)),
                                 sizes)
    report.lines.append(line(f"{WIDTH} concurrent, LLM after 200 ms ({len(gate)})", [s.total * 1000 for s in base],
                             [s.total * 1000 for s in gate]))
    report.target("check: direct p50 off 200 ms by", abs(ms(base, .5) / (LLM_DELAY * 1000) - 1) * 100, 5.0, unit=" %")
    report.target("200 ms LLM: gateway p50 / direct p50", ms(gate, .5) / ms(base, .5), 1.1)


async def streams(llm_port: int, gateway_port: int, sizes: Sizes, report: Report) -> None:
    base, gate = await alternate((llm_port, chat(llm_port, stream=True)),
                                 (gateway_port, chat(gateway_port, stream=True, through_gateway=True)), sizes)
    report.lines.append(line(f"{WIDTH} streams: time to first token ({len(gate)})",
                             [s.first_byte * 1000 for s in base], [s.first_byte * 1000 for s in gate]))
    report.lines.append(line(f"{WIDTH} streams: total ({len(gate)})", [s.total * 1000 for s in base],
                             [s.total * 1000 for s in gate]))
    report.target("streams: total p50 ratio", ms(gate, .5) / ms(base, .5), 1.15)
    report.target("streams: TTFT p50 ratio", ms(gate, .5, True) / ms(base, .5, True), 1.5)


async def capacity(gateway_port: int, hello_port: int, sizes: Sizes, report: Report) -> None:
    gateway_request = chat(gateway_port, through_gateway=True)
    hello_request = post(hello_port, "/hello", {"name": "world"})
    await closed_loop(gateway_port, gateway_request, connections=WIDTH, seconds=1.0)  # warm up
    await closed_loop(hello_port, hello_request, connections=WIDTH, seconds=1.0)
    chats, hellos = [], []
    for _ in range(sizes.capacity_rounds):
        done, took = await closed_loop(gateway_port, gateway_request, connections=WIDTH, seconds=sizes.seconds)
        chats.append(len(done) / took)
        done, took = await closed_loop(hello_port, hello_request, connections=WIDTH, seconds=sizes.seconds)
        hellos.append(len(done) / took)
    # Each gateway round against the hello-world round right after it; the median of those ratios.
    share = percentile([c / h for c, h in zip(chats, hellos, strict=True)], .5) * 100
    report.lines.append(f"capacity, {WIDTH} concurrent, instant LLM, {sizes.capacity_rounds} rounds of "
                        f"{sizes.seconds:g} s each: gateway {percentile(chats, .5):,.0f} chats/s (median; "
                        f"{min(chats):,.0f}-{max(chats):,.0f}), hello-world FastAPI {percentile(hellos, .5):,.0f} "
                        f"req/s ({min(hellos):,.0f}-{max(hellos):,.0f})")
    report.target("capacity: gateway chats/s vs hello-world (median of paired rounds)", share, 30.0,
                  at_least=True, unit=" %")


def run(sizes: Sizes, rag: bool) -> Report:
    report = Report([], [])
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp_dir:
        procs = BenchStack(stack, Path(tmp_dir))
        instant = procs.gateway(procs.fake_llm())
        delayed = procs.gateway(procs.fake_llm(delay=LLM_DELAY))
        # 50 tokens/s: the first chunk too comes a token's time after the request.
        streaming = procs.gateway(procs.fake_llm(delay=CHUNK_INTERVAL, chunks=CHUNKS, interval=CHUNK_INTERVAL))
        hello = procs.hello_world()
        rag_gateway = procs.gateway(instant.llm_port, procs.retriever()) if rag else None

        async def loads() -> None:
            await sequential(instant.llm_port, instant.gateway_port, sizes.sequential, report)
            await concurrent(delayed.llm_port, delayed.gateway_port, sizes, report)
            await streams(streaming.llm_port, streaming.gateway_port, sizes, report)
            await capacity(instant.gateway_port, hello, sizes, report)
            if rag_gateway is not None:
                await sequential(instant.llm_port, rag_gateway.gateway_port, max(50, sizes.sequential // 3), report,
                                 rag=True)

        uvloop.run(loads())
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls and shorter rounds (make bench)")
    parser.add_argument("--rag", action="store_true", help="add the RAG line (starts the retriever)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    report = run(QUICK if args.quick else FULL, args.rag)
    print(f"{'ms per chat':<40} {'direct':>8} {'':>8} {'gateway':>8} {'':>8} {'added':>8} {'ratio':>7}")
    print(f"{'':<40} {'p50':>8} {'p99':>8} {'p50':>8} {'p99':>8} {'p50':>8} {'p50':>7}")
    for text in report.lines:
        print(text)
    print(f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} CPUs")
    if report.failures:
        print(f"MISSED: {', '.join(report.failures)}")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
