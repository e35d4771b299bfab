"""The diffusers pipeline: loaded once, warmed up, then driven one image at a time from a thread.

Nothing here touches the event loop: `Renderer.render` is blocking and runs under
`asyncio.to_thread` (see `imagegen.runner`).
"""

from __future__ import annotations

import gc
import io
import logging
from collections.abc import Callable

import torch
from diffusers import StableDiffusionXLPipeline
from PIL.Image import Image

from imagegen.domain import ImageJob, OutOfMemory
from imagegen.settings import TINY_RANDOM
from imagegen.tiny import build_tiny_pipeline

log = logging.getLogger(__name__)

# Called after each denoising step with the number of steps done; raising stops the image.
StepHook = Callable[[int], None]

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
WARMUP_JOB = ImageJob(job_id="warmup", prompt="warm up", negative_prompt="", n=1, width=64, height=64,
                      steps=1, guidance=5.0, seed=0)


def configure_threads(cpu_threads: int) -> None:
    if cpu_threads > 0:
        torch.set_num_threads(cpu_threads)


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"IMAGEGEN_DEVICE={name} but no CUDA device is available")
    return name


def resolve_dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return _DTYPES[name]


def build_pipeline(model: str, device: str, dtype: torch.dtype,
                   variant: str | None = None) -> StableDiffusionXLPipeline:
    """`tiny-random` (no download) or an SDXL model from a local directory or the local hub cache."""
    if model == TINY_RANDOM:
        pipe = build_tiny_pipeline()  # float32 on the CPU
        pipe = pipe.to(device=device, dtype=dtype) if dtype != torch.float32 else pipe.to(device)
    else:
        pipe = StableDiffusionXLPipeline.from_pretrained(model, torch_dtype=dtype, variant=variant,
                                                         use_safetensors=True)
        pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def encode_png(image: Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class Renderer:
    """One pipeline, one image per call. Not re-entrant: callers run one render at a time."""

    def __init__(self, pipe: StableDiffusionXLPipeline) -> None:
        self._pipe = pipe

    @property
    def pipeline(self) -> StableDiffusionXLPipeline:
        return self._pipe

    @property
    def device(self) -> str:
        return str(self._pipe.device)

    def render(self, job: ImageJob, index: int, on_step: StepHook) -> bytes:
        """Image `index` of `job` as PNG bytes; seeded with `job.image_seed(index)` on a CPU generator
        so the same job gives the same pixels on any device."""
        generator = torch.Generator("cpu").manual_seed(job.image_seed(index))

        def callback(_pipe: object, step: int, _timestep: object, tensors: dict) -> dict:
            on_step(step + 1)
            return tensors

        out_of_memory = False
        try:
            with torch.inference_mode():
                result = self._pipe(
                    prompt=job.prompt, negative_prompt=job.negative_prompt or None, width=job.width,
                    height=job.height, num_inference_steps=job.steps, guidance_scale=job.guidance,
                    generator=generator, callback_on_step_end=callback, output_type="pil",
                )
        except torch.cuda.OutOfMemoryError:
            out_of_memory = True
        if out_of_memory:  # outside the except block, so the failed step's tensors are released
            self.free_memory()
            raise OutOfMemory(f"out of accelerator memory rendering {job.width}x{job.height}; "
                              "try a smaller size")
        return encode_png(result.images[0])

    def warm_up(self) -> None:
        """One tiny inference, so the first job does not pay for lazy initialisation."""
        self.render(WARMUP_JOB, 0, lambda _step: None)

    def free_memory(self) -> None:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
