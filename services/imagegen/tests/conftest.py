"""imagegen test fixtures: the tiny random-weight pipeline, built once per session (CPU, no download)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_renderer():
    import torch

    from imagegen.renderer import Renderer, build_pipeline
    from imagegen.settings import TINY_RANDOM

    torch.set_num_threads(1)  # as the worker does by default: fast on a busy machine
    renderer = Renderer(build_pipeline(TINY_RANDOM, "cpu", torch.float32))
    renderer.warm_up()
    return renderer
