"""The pipeline builder and the renderer: the tiny SDXL-shaped pipeline runs the real diffusers code."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from imagegen.domain import ImageJob, OutOfMemory
from imagegen.renderer import Renderer, build_pipeline, resolve_dtype
from imagegen.settings import TINY_RANDOM
from imagegen.tiny import build_tiny_pipeline, sdxl_unet_config, tiny_tokenizer


def job(**changes) -> ImageJob:
    values = {"job_id": "j1", "prompt": "a red fox, oil painting", "negative_prompt": "", "n": 2, "width": 64,
              "height": 64, "steps": 2, "guidance": 5.0, "seed": 11}
    return ImageJob(**{**values, **changes})


def png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.size


def test_the_tiny_pipeline_is_sdxl_shaped_and_built_without_files() -> None:
    pipe = build_tiny_pipeline()
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"
    assert pipe.unet.config.addition_embed_type == "text_time"
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size * 2
    assert pipe.tokenizer("a red fox").input_ids[0] == pipe.tokenizer.bos_token_id


def test_the_tiny_pipeline_has_the_same_weights_every_build_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    first, second = build_tiny_pipeline(), build_tiny_pipeline()
    assert torch.rand(1) == expected
    for a, b in zip(first.unet.parameters(), second.unet.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_tokenizer_needs_no_files_and_maps_unknown_characters() -> None:
    tokenizer = tiny_tokenizer()
    ids = tokenizer("Hello, Wörld!", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and max(ids) < 1000


def test_renders_a_png_of_the_requested_size_deterministically_per_image_seed(tiny_renderer) -> None:
    steps_seen: list[int] = []
    first = tiny_renderer.render(job(width=64, height=96), 0, steps_seen.append)
    assert png_size(first) == (64, 96) and steps_seen == [1, 2]
    assert tiny_renderer.render(job(width=64, height=96), 0, lambda _s: None) == first
    assert tiny_renderer.render(job(width=64, height=96), 1, lambda _s: None) != first  # seed + 1
    assert tiny_renderer.render(job(width=64, height=96, seed=12), 0, lambda _s: None) == \
        tiny_renderer.render(job(width=64, height=96), 1, lambda _s: None)


def test_a_step_hook_that_raises_stops_the_render(tiny_renderer) -> None:
    class Stop(Exception):
        pass

    calls: list[int] = []

    def hook(step: int) -> None:
        calls.append(step)
        raise Stop

    with pytest.raises(Stop):
        tiny_renderer.render(job(steps=10), 0, hook)
    assert calls == [1]


def test_out_of_memory_becomes_a_domain_error_after_freeing_memory() -> None:
    class OomPipe:
        def __call__(self, **_kwargs):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    freed: list[bool] = []
    renderer = Renderer(OomPipe())  # type: ignore[arg-type]
    renderer.free_memory = lambda: freed.append(True)  # type: ignore[method-assign]
    with pytest.raises(OutOfMemory, match="64x64"):
        renderer.render(job(), 0, lambda _s: None)
    assert freed == [True]


def test_dtype_defaults_follow_the_device() -> None:
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.float16
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16


def test_the_sdxl_unet_config_is_the_real_shape() -> None:
    config = sdxl_unet_config()
    assert config["block_out_channels"] == (320, 640, 1280) and config["cross_attention_dim"] == 2048
    assert config["projection_class_embeddings_input_dim"] == 6 * config["addition_time_embed_dim"] + 1280


@pytest.mark.gpu
def test_the_tiny_pipeline_runs_in_fp16_on_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    renderer = Renderer(build_pipeline(TINY_RANDOM, "cuda", torch.float16))
    assert renderer.device.startswith("cuda")
    assert next(renderer.pipeline.unet.parameters()).dtype == torch.float16
    renderer.warm_up()
    first = renderer.render(job(width=128, height=128, steps=3), 0, lambda _s: None)
    assert png_size(first) == (128, 128)
    assert renderer.render(job(width=128, height=128, steps=3), 0, lambda _s: None) == first
    pixels = torch.tensor(list(Image.open(io.BytesIO(first)).convert("L").getdata()), dtype=torch.float32)
    assert pixels.std() > 0  # not a NaN-black image (fp16 overflow would give one)
