"""The one-machine image model at every size the gateway accepts, against the latent scale it had.

`IMAGEGEN_MODEL=tiny-random` used a VAE that halved the image side, so a 512x512 image was
denoised as a 256x256 latent with self-attention over 16,384 tokens: minutes per image on a CPU.
The pipeline now has SDXL's latent scale (1/8 of the side) and cross-attention only at the UNet's
coarsest level. Baseline, same run, same process: the previous shape (its UNet and VAE configs are
kept below) at 512x512. It is measured over a few steps and its 20-step time extrapolated from the
per-step time, because 20 steps take a quarter of an hour on a busy CPU.

Times are CPU seconds of this process (one torch thread, the worker's default), which a shared
machine's load disturbs much less than wall time; wall time is printed beside them.

    .venv/bin/python bench/imagegen_tiny_sizes.py            # baseline over 2 steps
    .venv/bin/python bench/imagegen_tiny_sizes.py --quick    # baseline over 1 step

Targets: every accepted size renders 20 steps in ≤ 15 CPU seconds, and 512x512 is ≥ 20× faster
than the baseline. Exits 1 if either is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402

from imagegen.jobs import ImageJob  # noqa: E402
from imagegen.pipeline import Renderer  # noqa: E402
from imagegen.tiny import WEIGHT_SEED, build_tiny_pipeline  # noqa: E402

SIZES = (64, 512, 768, 1024)  # the gateway's default JOBS_IMAGE_SIZES
STEPS = 20
MAX_CPU_SECONDS = 15.0
MIN_SPEEDUP = 20.0


def previous_pipeline() -> Renderer:
    """The tiny pipeline as it was: a 2-level VAE (latent side 1/2) and attention at half the latent side."""
    pipe = build_tiny_pipeline()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(WEIGHT_SEED)
        pipe.unet = UNet2DConditionModel(
            sample_size=32, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(32, 64),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4), transformer_layers_per_block=(1, 2), use_linear_projection=True,
            cross_attention_dim=64, addition_embed_type="text_time", addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + 32, norm_num_groups=1,
        )
        pipe.vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64), sample_size=128,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        )
    pipe.vae_scale_factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    pipe.image_processor.config.vae_scale_factor = pipe.vae_scale_factor
    pipe.set_progress_bar_config(disable=True)
    return Renderer(pipe)


def timed(render: Callable[[], bytes]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one render."""
    cpu, wall = time.process_time(), time.perf_counter()
    render()
    return time.process_time() - cpu, time.perf_counter() - wall


def job(size: int, steps: int) -> ImageJob:
    return ImageJob(job_id="bench", prompt="a lighthouse at dawn", negative_prompt="", n=1, width=size,
                    height=size, steps=steps, guidance=5.0, seed=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="baseline over 1 step instead of 2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    current = Renderer(build_tiny_pipeline())
    current.pipeline.set_progress_bar_config(disable=True)
    current.warm_up()
    print(f"tiny-random, latent scale {current.pipeline.vae_scale_factor}, {STEPS} steps, 1 torch thread")
    results = {}
    for size in SIZES:
        cpu, wall = timed(lambda s=size: current.render(job(s, STEPS), 0, lambda _step: None))
        results[size] = cpu
        print(f"  {size}x{size}: {cpu:6.2f} CPU s  ({wall:.2f} s wall)", flush=True)

    base_steps = 1 if args.quick else 2
    previous = previous_pipeline()
    previous.warm_up()
    one, _ = timed(lambda: previous.render(job(512, 1), 0, lambda _step: None))
    if base_steps > 1:
        more, _ = timed(lambda: previous.render(job(512, base_steps), 0, lambda _step: None))
        per_step = (more - one) / (base_steps - 1)
    else:
        per_step = one  # counts text encoding and decoding 20 times: a few % high at this size
    baseline = one + per_step * (STEPS - 1)
    speedup = baseline / results[512]
    print(f"baseline (latent scale {previous.pipeline.vae_scale_factor}) 512x512: {per_step:.1f} CPU s per step, "
          f"{STEPS} steps ≈ {baseline:.0f} CPU s (extrapolated from {base_steps} step{'s' * (base_steps > 1)})")
    print(f"512x512, {STEPS} steps: {baseline:.0f} → {results[512]:.2f} CPU s, ratio {speedup:.0f}× "
          f"(target ≥ {MIN_SPEEDUP:.0f}×); slowest size {max(results.values()):.2f} CPU s "
          f"(target ≤ {MAX_CPU_SECONDS:.0f})")
    return 0 if speedup >= MIN_SPEEDUP and max(results.values()) <= MAX_CPU_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
