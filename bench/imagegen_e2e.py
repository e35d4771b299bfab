"""Image jobs end to end against the raw diffusers pipeline, and submission latency under a burst.

End to end: `POST /v1/jobs/images` to the gateway (subprocess) → confirmed `image.job.requested`
on the real RabbitMQ (a throw-away vhost) → the imagegen worker (subprocess, tiny random-weight
SDXL pipeline) renders n images, stores the PNGs and reports `job.progress` → the gateway applies
it → the job's event stream (`GET /v1/jobs/{id}/events`) delivers the terminal `succeeded` event.
Baseline, same run, same machine, same settings (model, device, dtype, CPU threads, size, steps,
guidance, per-image seeds): the raw `pipe(...)` calls for the same n images in this process,
without PNG encoding, storage or messaging. Each run is a back-to-back pair (raw then end to end,
or the other way round, alternating) and the target applies to the median of the pairs' ratios,
which keeps the load of a shared machine from landing on one side only.

    .venv/bin/python bench/imagegen_e2e.py            # 64x64, 20 steps, n=4, 7 runs, burst of 200
    .venv/bin/python bench/imagegen_e2e.py --quick    # 3 runs, burst of 100
    .venv/bin/python bench/imagegen_e2e.py --device cuda   # fp16; adds SDXL-sized UNet step time at 1024x1024

Target: end to end ≤ 1.1 × raw (median of the paired ratios); exits 1 if missed. The burst (n=1, 1 step, 64x64
jobs, all POSTed at once) reports submission latency p50/p99 and the time until all finished.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The checkout on sys.path (for tests.support) before the imports below, hence their `noqa: E402`.
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import httpx  # noqa: E402
import torch  # noqa: E402

from imagegen.domain import ImageJob  # noqa: E402
from imagegen.renderer import build_pipeline, configure_threads, resolve_dtype  # noqa: E402
from imagegen.settings import TINY_RANDOM  # noqa: E402
from imagegen.tiny import build_sdxl_unet  # noqa: E402
from tests.support import rabbitmq  # noqa: E402
from tests.support.eventually import eventually  # noqa: E402
from tests.support.procs import Service, free_port, http_ok  # noqa: E402

TARGET = 1.10
CPU_THREADS = 1  # the worker's default (IMAGEGEN_CPU_THREADS); the baseline uses the same


@dataclass(frozen=True)
class Shape:
    size: int
    steps: int
    n: int
    guidance: float = 5.0
    seed: int = 1234

    def body(self) -> dict:
        return {"prompt": "a lighthouse at dusk, oil painting", "n": self.n, "size": f"{self.size}x{self.size}",
                "steps": self.steps, "guidance": self.guidance, "seed": self.seed}


@contextlib.contextmanager
def jobs_stack(device: str, size: int, max_steps: int) -> Iterator[str]:
    """The gateway and one imagegen worker in a fresh vhost; yields the gateway's base URL."""
    if not rabbitmq.available():
        raise SystemExit("rabbitmqctl not found: this benchmark needs the local RabbitMQ")
    with tempfile.TemporaryDirectory(prefix="imagegen-bench-") as tmp, \
            rabbitmq.temporary_vhost("bench-imagegen") as amqp_url:
        root, gateway_port, metrics_port = Path(tmp), free_port(), free_port()
        env = {"AMQP_URL": amqp_url, "BLOB_STORE_URL": f"file://{root}/blobs", "LOG_LEVEL": "WARNING",
               "DATABASE_URL": f"sqlite+aiosqlite:///{root}/gateway.db", "GATEWAY_PORT": str(gateway_port),
               "IMAGEGEN_MODEL": TINY_RANDOM, "IMAGEGEN_DEVICE": device, "IMAGEGEN_METRICS_PORT": str(metrics_port),
               "IMAGEGEN_CPU_THREADS": str(CPU_THREADS), "JOBS_IMAGE_SIZES": f"64x64,{size}x{size}",
               "JOBS_MAX_STEPS": str(max_steps), "IMAGEGEN_MAX_STEPS": str(max_steps), "LLM_BASE_URL": ""}
        services = []
        try:
            services.append(Service("imagegen", env, root / "imagegen.log"))
            services[-1].wait_until(lambda: http_ok(f"http://127.0.0.1:{metrics_port}/readyz"), 300)
            services.append(Service("gateway", env, root / "gateway.log"))
            services[-1].wait_until(lambda: http_ok(f"http://127.0.0.1:{gateway_port}/readyz"), 120)
            yield f"http://127.0.0.1:{gateway_port}"
        finally:
            for service in reversed(services):
                service.terminate()


class RawPipeline:
    """The baseline: the same pipeline, called directly, one image per call (as the worker does)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.pipe = build_pipeline(TINY_RANDOM, device, resolve_dtype("auto", device))

    def run(self, shape: Shape) -> float:
        job = ImageJob("bench", shape.body()["prompt"], "", shape.n, shape.size, shape.size, shape.steps,
                       shape.guidance, shape.seed)
        started = time.perf_counter()
        for index in range(shape.n):
            with torch.inference_mode():
                self.pipe(prompt=job.prompt, width=shape.size, height=shape.size, num_inference_steps=shape.steps,
                          guidance_scale=shape.guidance,
                          generator=torch.Generator("cpu").manual_seed(job.image_seed(index)),
                          output_type="pil")
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - started


async def end_to_end(client: httpx.AsyncClient, shape: Shape) -> float:
    """Seconds from sending the POST to receiving the job's terminal event."""
    started = time.perf_counter()
    reply = await client.post("/v1/jobs/images", json=shape.body())
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["id"]
    name = ""
    async with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: ") and name in ("succeeded", "failed", "cancelled"):
                elapsed = time.perf_counter() - started
                if name != "succeeded":
                    raise SystemExit(f"job {job_id} {name}: {json.loads(line[6:])['error']}")
                return elapsed
    raise SystemExit(f"the event stream of job {job_id} ended without a terminal event")


async def burst(client: httpx.AsyncClient, count: int) -> tuple[list[float], float]:
    """POST `count` tiny jobs at once; per-request latencies, and seconds until all succeeded."""
    body = {"prompt": "a lighthouse", "n": 1, "size": "64x64", "steps": 1}

    async def one() -> tuple[float, str]:
        started = time.perf_counter()
        reply = await client.post("/v1/jobs/images", json=body)
        assert reply.status_code == 202, reply.text
        return time.perf_counter() - started, reply.json()["id"]

    started = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(count)))
    ids = [job_id for _, job_id in results]

    async def succeeded() -> int:
        done = 0
        for start in range(0, count, 100):
            listed = (await client.get("/v1/jobs", params={"ids": ",".join(ids[start:start + 100])})).json()["data"]
            done += sum(job["status"] == "succeeded" for job in listed)
        return done

    await eventually(succeeded, lambda done: done == count, within=1800, every=0.2, what=f"{count} jobs succeeded")
    return [latency for latency, _ in results], time.perf_counter() - started


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def sdxl_step_seconds(device: str, size: int = 1024, steps: int = 10) -> float:
    """One denoising step of an SDXL-sized UNet (random weights) at `size`, batch 2 (guidance)."""
    dtype = resolve_dtype("auto", device)
    unet = build_sdxl_unet(device, dtype)
    side = size // 8
    latents = torch.randn(2, 4, side, side, device=device, dtype=dtype)
    context = torch.randn(2, 77, 2048, device=device, dtype=dtype)
    added = {"text_embeds": torch.randn(2, 1280, device=device, dtype=dtype),
             "time_ids": torch.tensor([[size, size, 0, 0, size, size]] * 2, device=device, dtype=dtype)}
    timings = []
    with torch.inference_mode():
        for step in range(steps + 3):
            started = time.perf_counter()
            unet(latents, torch.tensor(999 - step, device=device), encoder_hidden_states=context,
                 added_cond_kwargs=added, return_dict=False)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if step >= 3:  # the first steps pick kernels
                timings.append(time.perf_counter() - started)
    return statistics.median(timings)


async def measure(url: str, raw: RawPipeline, shape: Shape, runs: int, burst_size: int) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=burst_size)) as client:
        await end_to_end(client, Shape(64, 1, 1))  # warm the path (connections, first SQL, first publish)
        raw.run(Shape(shape.size, 1, 1))
        raw_s, e2e_s = [], []
        for run in range(runs):  # pairs, in alternating order, so load drift hits both sides alike
            if run % 2:
                e2e_s.append(await end_to_end(client, shape))
                raw_s.append(raw.run(shape))
            else:
                raw_s.append(raw.run(shape))
                e2e_s.append(await end_to_end(client, shape))
        latencies, drained = await burst(client, burst_size)
    return {"raw": raw_s, "e2e": e2e_s, "latencies": latencies, "drained": drained}


def report(args: argparse.Namespace, shape: Shape, result: dict, sdxl: float | None) -> bool:
    raw, e2e = statistics.median(result["raw"]), statistics.median(result["e2e"])
    ratio = statistics.median(e / r for e, r in zip(result["e2e"], result["raw"], strict=True))
    lat = result["latencies"]
    print(f"\nimagegen end to end — device {args.device}, tiny-random, {shape.size}x{shape.size}, "
          f"{shape.steps} steps, n={shape.n}, {args.runs} runs")
    print(f"{'path':<34}{'median s':>10}{'min s':>9}{'max s':>9}")
    print(f"{'raw pipe() calls (baseline)':<34}{raw:>10.3f}{min(result['raw']):>9.3f}{max(result['raw']):>9.3f}")
    print(f"{'gateway → worker → event stream':<34}{e2e:>10.3f}{min(result['e2e']):>9.3f}{max(result['e2e']):>9.3f}")
    print(f"ratio end to end / raw, median of {len(result['raw'])} back-to-back pairs: {ratio:.3f} "
          f"(target ≤ {TARGET:.2f}); ratio of medians {e2e / raw:.3f}, of minimums "
          f"{min(result['e2e']) / min(result['raw']):.3f}")
    print(f"\nburst: {len(lat)} POST /v1/jobs/images at once (n=1, 1 step, 64x64)")
    print(f"submission latency p50 {percentile(lat, 50) * 1000:.1f} ms, p99 {percentile(lat, 99) * 1000:.1f} ms, "
          f"max {max(lat) * 1000:.1f} ms; all {len(lat)} succeeded after {result['drained']:.1f} s")
    if sdxl is not None:
        print(f"\nSDXL-sized UNet (random weights, fp16), 1024x1024, batch 2: {sdxl * 1000:.1f} ms/step "
              f"({1 / sdxl:.2f} steps/s)")
    passed = ratio <= TARGET
    print("\nPASS" if passed else "\nFAIL: end to end is more than 1.1x the raw pipeline")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (fp16)")
    parser.add_argument("--quick", action="store_true", help="3 runs and a burst of 100")
    parser.add_argument("--size", type=int, default=None, help="image side (default 64 on cpu, 512 on cuda)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--burst", type=int, default=None)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    args.runs = args.runs or (3 if args.quick else 7)
    size = args.size or (512 if args.device.startswith("cuda") else 64)
    shape = Shape(size, args.steps, args.n)
    configure_threads(CPU_THREADS)
    raw = RawPipeline(args.device)
    with jobs_stack(args.device, size, max(args.steps, 50)) as url:
        result = asyncio.run(measure(url, raw, shape, args.runs, args.burst or (100 if args.quick else 200)))
    del raw
    sdxl = sdxl_step_seconds(args.device) if args.device.startswith("cuda") else None
    sys.exit(0 if report(args, shape, result, sdxl) else 1)


if __name__ == "__main__":
    main()
