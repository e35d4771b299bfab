"""Random-weight SDXL-shaped models built from configs, with no download.

`build_tiny_pipeline()` is a small `StableDiffusionXLPipeline` (two CLIP text encoders, a
cross-attention UNet with SDXL's text-time conditioning, a VAE with SDXL's latent scale of 8,
Euler) whose weights are drawn from a fixed seed, so every build is identical and a seeded job
renders the same pixels every time. It draws noise, not pictures: it exercises the real diffusers
code path on a CPU, and every size the gateway accepts (up to 1024x1024) renders in seconds.
`sdxl_unet_config()` is the real SDXL base UNet's shape, for per-step timings on a GPU with
random weights.
"""

from __future__ import annotations

import string
from typing import Any

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

WEIGHT_SEED = 0
_TEXT_HIDDEN = 32
_TIME_EMBED = 8


def tiny_vocab() -> dict[str, int]:
    """An in-memory byte-level vocabulary: the specials, then characters with and without `</w>`."""
    chars = string.ascii_lowercase + string.digits + ".,'-!?"
    tokens = ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]
    return {token: index for index, token in enumerate(tokens)}


def tiny_tokenizer() -> CLIPTokenizer:
    return CLIPTokenizer(vocab=tiny_vocab(), merges=[], model_max_length=77)


def _text_config() -> CLIPTextConfig:
    return CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, vocab_size=1000, hidden_size=_TEXT_HIDDEN,
        intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, projection_dim=_TEXT_HIDDEN,
        hidden_act="gelu", layer_norm_eps=1e-5,
    )


def _tiny_unet() -> UNet2DConditionModel:
    """Three levels like SDXL's UNet; cross-attention only at the coarsest (1/4 of the latent side),
    so attention stays cheap at 1024x1024 (a 32x32 token grid) while the text conditioning is real."""
    return UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32, 64),
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 2, 4), transformer_layers_per_block=(1, 1, 2), use_linear_projection=True,
        cross_attention_dim=2 * _TEXT_HIDDEN,  # both text encoders' hidden states, concatenated
        addition_embed_type="text_time", addition_time_embed_dim=_TIME_EMBED,
        projection_class_embeddings_input_dim=6 * _TIME_EMBED + _TEXT_HIDDEN,  # 6 time ids + pooled text
        norm_num_groups=1,
    )


def _tiny_vae() -> AutoencoderKL:
    """SDXL's latent scale: four levels, so the latent side is 1/8 of the image side (a 1024x1024 image is a
    128x128 latent). Narrow channels and no attention in the middle block keep full-size decoding cheap."""
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 16, 16), sample_size=128,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=4, mid_block_add_attention=False,
    )


def euler_scheduler() -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading",
    )


def build_tiny_pipeline(seed: int = WEIGHT_SEED) -> StableDiffusionXLPipeline:
    """The tiny pipeline on the CPU in float32; the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet, vae = _tiny_unet(), _tiny_vae()
        text_encoder, text_encoder_2 = CLIPTextModel(_text_config()), CLIPTextModelWithProjection(_text_config())
    tokenizer = tiny_tokenizer()
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
        tokenizer_2=tokenizer, unet=unet, scheduler=euler_scheduler(),
    )


def sdxl_unet_config() -> dict[str, Any]:
    """The SDXL base 1.0 UNet's architecture (about 2.6 B parameters); latents are 1/8 of the image side."""
    return {
        "sample_size": 128, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
        "block_out_channels": (320, 640, 1280),
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "attention_head_dim": (5, 10, 20), "transformer_layers_per_block": (1, 2, 10),
        "use_linear_projection": True, "cross_attention_dim": 2048, "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816, "norm_num_groups": 32,
    }


def build_sdxl_unet(device: str, dtype: torch.dtype, seed: int = WEIGHT_SEED) -> UNet2DConditionModel:
    """An SDXL-sized UNet with random weights, initialised directly on `device` (fast on a GPU)."""
    with torch.random.fork_rng(), torch.device(device):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**sdxl_unet_config())
    return unet.to(dtype=dtype).eval()
