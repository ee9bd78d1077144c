"""Fixtures for the diffusion tests: a tiny 8x8 world that trains in seconds.

Three classes, each lighting its own horizontal band (``synthetic_arrays``), are easy
enough that a ~42 K-parameter UNet learns to tell them apart in 150 steps, which is all
the erasure tests need: a model whose classes differ, so erasing one is measurable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch

from contracts.ddpm import DiffusionArchitecture, DiffusionTrainParams
from tests.workers.engine.conftest import synthetic_arrays
from workers.engine.data import ImageArrays
from workers.engine.diffusion.judge import Judge, train_judge
from workers.engine.diffusion.models import build_unet, cpu_state_dict, train_ddpm
from workers.engine.diffusion.unlearning import DiffusionUnlearnData

NUM_CLASSES = 3
ERASED = 0


@dataclass
class DiffusionWorld:
    arch: DiffusionArchitecture
    recipe: DiffusionTrainParams
    images: ImageArrays
    held_out: ImageArrays
    init_state_dict: dict[str, torch.Tensor]
    state_dict: dict[str, torch.Tensor]
    data: DiffusionUnlearnData


def tiny_arch() -> DiffusionArchitecture:
    return DiffusionArchitecture.preset("tiny8", num_classes=NUM_CLASSES)


def tiny_recipe(**overrides: object) -> DiffusionTrainParams:
    base = {
        "steps": 150,
        "batch_size": 32,
        "lr": 3e-3,
        "lr_warmup_steps": 5,
        "checkpoint_every_steps": 0,
        "log_every_steps": 50,
    }
    return DiffusionTrainParams.model_validate({**base, **overrides})


@pytest.fixture(scope="session")
def world() -> DiffusionWorld:
    arch = tiny_arch()
    images = synthetic_arrays(n=192, size=8, num_classes=NUM_CLASSES, seed=0)
    held_out = synthetic_arrays(n=96, size=8, num_classes=NUM_CLASSES, seed=1)
    recipe = tiny_recipe()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        init = cpu_state_dict(build_unet(arch))
    trained = train_ddpm(arch, recipe, images)
    data = DiffusionUnlearnData(
        forget_labels=[ERASED],
        forget=images.subset(images.labels == ERASED),
        retain=images.subset(images.labels != ERASED),
    )
    return DiffusionWorld(arch, recipe, images, held_out, init, trained.state_dict, data)


@pytest.fixture(scope="session")
def judge(world: DiffusionWorld) -> Judge:
    return train_judge(world.arch, world.images, width=8)


# --------------------------------------------------------------------------- prompt families

PROMPT_NAMES = ["sneaker", "dress", "handbag"]


@dataclass
class PromptWorld:
    arch: Any
    recipe: DiffusionTrainParams
    images: ImageArrays
    state_dict: dict[str, torch.Tensor]
    prompts: list[str]


@pytest.fixture(scope="session")
def prompt_world() -> PromptWorld:
    """A tiny text2image model on the band world, captioned "a photo of <name>"."""
    from contracts.text2image import TextToImageArchitecture
    from workers.engine.diffusion.prompted import train_text2image

    arch = TextToImageArchitecture.preset("tiny8", num_classes=NUM_CLASSES)
    images = synthetic_arrays(n=192, size=8, num_classes=NUM_CLASSES, seed=0)
    recipe = tiny_recipe(steps=100)
    trained = train_text2image(arch, recipe, images, PROMPT_NAMES)
    prompts = [f"a photo of {n}" for n in PROMPT_NAMES]
    return PromptWorld(arch, recipe, images, trained.state_dict, prompts)
