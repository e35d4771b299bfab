"""Does one key far over its limit slow down another key? Key B's chat latency while key A sends
at its requests-per-minute limit, and while A sends ten times that, at the same gateway.

Processes: a FakeFastLLM (instant answers), the gateway (`python -m gateway`, keys `team-a` and
`team-b`, GATEWAY_KEY_REQUESTS_PER_MINUTE for both), and this one generating the load. Key B
sends chats at half its limit, paced (an open loop, so a slow gateway cannot hide by lowering
B's rate). Key A sends at exactly its limit in the baseline rounds and at ten times it in the
flood rounds, where all but its quota is refused (429): the two differ only by A's excess. A's
bucket (a minute's worth) is spent first. Baseline and flood rounds alternate, so both see the
same machine. The figure is B's p99 in the flood rounds over its p99 in the baseline rounds.

| target |
| --- |
| B's p99 with A at 10x its limit <= 1.10x B's p99 with A at its limit (issue 10) |

    .venv/bin/python bench/limits_fairness.py [--quick]

Exits non-zero when the target is missed or when B is ever refused.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from _gateway_stack import BenchStack
from _loadgen import percentile

PER_MINUTE = 600  # 10 requests a second per key
B_RATE = PER_MINUTE / 60 / 2  # half its limit
A_LIMIT_RATE = PER_MINUTE / 60  # key A at exactly its limit (the baseline rounds)
A_RATE = A_LIMIT_RATE * 10  # ten times its limit (the flood rounds)
KEYS = {"team-a": "sk-bench-a", "team-b": "sk-bench-b"}
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "Say hello."}],
        "genai": {"rag": False, "scrape": False}}


async def _paced(client: httpx.AsyncClient, key: str, rate: float, seconds: float,
                 latencies: list[float] | None, statuses: dict[int, int]) -> None:
    """Send at `rate` a second for `seconds`, each request on its own schedule (not after the last)."""
    headers = {"Authorization": f"Bearer {key}"}

    async def one() -> None:
        started = time.perf_counter()
        reply = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
        if latencies is not None and reply.status_code == 200:
            latencies.append(time.perf_counter() - started)
        statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1

    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)


async def _round(url: str, seconds: float, flood: bool) -> tuple[list[float], dict[int, int], dict[int, int]]:
    b_latencies: list[float] = []
    b_statuses: dict[int, int] = {}
    a_statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as b_client, \
            httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as a_client:
        await b_client.get("/healthz")
        work = [_paced(b_client, KEYS["team-b"], B_RATE, seconds, b_latencies, b_statuses),
                _paced(a_client, KEYS["team-a"], A_RATE if flood else A_LIMIT_RATE, seconds, None, a_statuses)]
        await asyncio.gather(*work)
    return b_latencies, b_statuses, a_statuses


async def measure(url: str, rounds: int, seconds: float) -> int:
    alone: list[float] = []
    flooded: list[float] = []
    refused_b = 0
    a_total: dict[int, int] = {}
    # A warm-up round, not counted; A spends its bucket (a minute's worth may go at once), so from
    # here on it is held to its rate; then the two kinds alternate.
    await _round(url, 2, flood=False)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        drained: dict[int, int] = {}
        while drained.get(429, 0) == 0:
            await _paced(client, KEYS["team-a"], A_RATE * 2, 1.0, None, drained)
    for _ in range(rounds):
        for flood in (False, True):
            latencies, b_statuses, a_statuses = await _round(url, seconds, flood)
            (flooded if flood else alone).extend(latencies)
            refused_b += sum(n for status, n in b_statuses.items() if status != 200)
            for status, n in a_statuses.items():
                a_total[status] = a_total.get(status, 0) + n
    p99_alone, p99_flooded = percentile(alone, 0.99), percentile(flooded, 0.99)
    ratio = p99_flooded / p99_alone
    print(f"machine load (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"key A at {A_LIMIT_RATE:.0f}/s, then flooding at {A_RATE:.0f}/s, against {PER_MINUTE}/min: "
          f"{dict(sorted(a_total.items()))}")
    print(f"key B at {B_RATE:.0f}/s: A at its limit p50 {percentile(alone, 0.5) * 1000:.1f} ms "
          f"p99 {p99_alone * 1000:.1f} ms ({len(alone)} chats); A at 10x p50 {percentile(flooded, 0.5) * 1000:.1f} ms "
          f"p99 {p99_flooded * 1000:.1f} ms ({len(flooded)} chats); refused {refused_b}")
    print(f"ratio B p99 A-at-10x / A-at-limit: {ratio:.2f}x (target <= 1.10x)")
    return 0 if ratio <= 1.10 and refused_b == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, seconds = (2, 4.0) if args.quick else (4, 8.0)
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        bench = BenchStack(stack, Path(tmp))
        llm = bench.fake_llm()
        keys = ",".join(f"{tenant}:{key}" for tenant, key in KEYS.items())
        gateway = bench.gateway(llm, GATEWAY_API_KEYS=keys, GATEWAY_KEY_REQUESTS_PER_MINUTE=str(PER_MINUTE))
        return asyncio.run(measure(f"http://127.0.0.1:{gateway.gateway_port}", rounds, seconds))


if __name__ == "__main__":
    sys.exit(main())
