from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from contracts.ddpm import DiffusionArchitecture, GenerateParams
from tests.workers.engine.conftest import synthetic_arrays
from tests.workers.engine.diffusion.conftest import DiffusionWorld, tiny_arch, tiny_recipe
from workers.engine.diffusion.checkpoint import load_ddpm, save_ddpm
from workers.engine.diffusion.models import (
    count_parameters,
    denoising_loss,
    generate,
    grid_png,
    train_ddpm,
)
from workers.engine.errors import EngineError, TrainingStopped
from workers.engine.training import Callbacks


class Recorder(Callbacks):
    def __init__(self, stop_after: int | None = None) -> None:
        self.states: list[dict[str, Any]] = []
        self.progress: list[int] = []
        self.metrics: list[tuple[str, float, int]] = []
        self.stop_after = stop_after

    def on_progress(self, step: int, total_steps: int) -> None:
        self.progress.append(step)

    def on_metric(self, name: str, value: float, step: int) -> None:
        self.metrics.append((name, value, step))

    def on_checkpoint(self, state: dict[str, Any]) -> None:
        self.states.append(state)

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.progress) > self.stop_after


def test_preset_sizes() -> None:
    # The CPU benchmark size of the issue (~0.5 M) and the test size.
    assert 450_000 < count_parameters(DiffusionArchitecture.preset("small16", 10)) < 650_000
    assert count_parameters(tiny_arch()) < 60_000


def test_training_lowers_the_denoising_loss(world: DiffusionWorld) -> None:
    before = denoising_loss(world.arch, world.init_state_dict, world.held_out)
    after = denoising_loss(world.arch, world.state_dict, world.held_out)
    assert after < 0.5 * before, (before, after)


def test_resume_matches_an_uninterrupted_run() -> None:
    arch, images = tiny_arch(), synthetic_arrays(n=48, size=8, num_classes=3)
    recipe = tiny_recipe(steps=12, batch_size=16, checkpoint_every_steps=5, lr_warmup_steps=2)
    recorder = Recorder()
    full = train_ddpm(arch, recipe, images, recorder)
    assert [s["step"] for s in recorder.states] == [5, 10]
    # Only run-time settings may change on resume.
    resumed_recipe = recipe.model_copy(update={"checkpoint_every_steps": 0})
    for state in recorder.states:
        resumed = train_ddpm(arch, resumed_recipe, images, resume=state)
        for key in full.state_dict:
            assert torch.equal(full.state_dict[key], resumed.state_dict[key]), key
            assert torch.equal(full.raw_state_dict[key], resumed.raw_state_dict[key]), key
    with pytest.raises(EngineError, match="different training params"):
        train_ddpm(arch, recipe.model_copy(update={"lr": 1e-4}), images, resume=recorder.states[0])
    with pytest.raises(EngineError, match="different training set"):
        train_ddpm(arch, recipe, images.subset(np.arange(40)), resume=recorder.states[0])


def test_ema_weights_differ_from_raw_and_can_be_switched_off() -> None:
    arch, images = tiny_arch(), synthetic_arrays(n=32, size=8, num_classes=3)
    with_ema = train_ddpm(arch, tiny_recipe(steps=6, batch_size=16, lr_warmup_steps=1), images)
    key = "conv_in.weight"
    assert not torch.equal(with_ema.state_dict[key], with_ema.raw_state_dict[key])
    plain = train_ddpm(
        arch, tiny_recipe(steps=6, batch_size=16, lr_warmup_steps=1, ema_decay=0.0), images
    )
    assert torch.equal(plain.state_dict[key], plain.raw_state_dict[key])


def test_training_is_cancellable_and_reports_progress() -> None:
    arch, images = tiny_arch(), synthetic_arrays(n=32, size=8, num_classes=3)
    recorder = Recorder(stop_after=3)
    with pytest.raises(TrainingStopped) as info:
        train_ddpm(arch, tiny_recipe(steps=50, batch_size=16), images, recorder)
    assert info.value.step == 3 and recorder.progress[:4] == [0, 1, 2, 3]


def test_training_refuses_bad_input() -> None:
    arch = tiny_arch()
    with pytest.raises(EngineError, match="fewer than batch_size"):
        train_ddpm(arch, tiny_recipe(batch_size=64), synthetic_arrays(n=32, size=8))
    wrong = synthetic_arrays(n=32, size=8, num_classes=5)
    with pytest.raises(EngineError, match="outside"):
        train_ddpm(arch, tiny_recipe(batch_size=16), wrong)


@pytest.mark.parametrize("scheduler", ["ddpm", "ddim", "dpm"])
def test_same_seed_same_images_whatever_the_batch(world: DiffusionWorld, scheduler: str) -> None:
    params = GenerateParams(
        labels=[0, 1, 2, 0, 1], seed=3, num_inference_steps=8, scheduler=scheduler, batch_size=5
    )
    first = generate(world.arch, world.state_dict, params)
    again = generate(world.arch, world.state_dict, params)
    assert first.images.shape == (5, 8, 8, 1) and first.images.dtype == np.uint8
    assert np.array_equal(first.images, again.images)
    # Per-image generators: image k does not depend on its batch neighbours.
    split = generate(world.arch, world.state_dict, params.model_copy(update={"batch_size": 2}))
    assert np.abs(first.images.astype(int) - split.images.astype(int)).max() <= 1
    other = generate(world.arch, world.state_dict, params.model_copy(update={"seed": 4}))
    assert not np.array_equal(first.images, other.images)


def test_generation_refuses_what_the_model_cannot_do(world: DiffusionWorld) -> None:
    with pytest.raises(EngineError, match="outside"):
        generate(world.arch, world.state_dict, GenerateParams(labels=[3]))
    too_many = GenerateParams(labels=[0], num_inference_steps=1000)
    small_t = world.arch.model_copy(update={"num_train_timesteps": 100})
    with pytest.raises(EngineError, match="exceeds"):
        generate(small_t, world.state_dict, too_many)
    with pytest.raises(EngineError, match="does not fit"):
        generate(
            DiffusionArchitecture.preset("tiny8", 4), world.state_dict, GenerateParams(labels=[0])
        )


def test_generation_is_cancellable(world: DiffusionWorld) -> None:
    params = GenerateParams(labels=[0] * 4, num_inference_steps=2, batch_size=1)
    with pytest.raises(TrainingStopped):
        generate(world.arch, world.state_dict, params, Recorder(stop_after=1))


def test_grid_png_decodes() -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
    png = grid_png(images, nrow=3, padding=1)
    grid = np.asarray(Image.open(io.BytesIO(png)))
    assert grid.shape == (2 * 8 + 3, 3 * 8 + 4)
    assert np.array_equal(grid[1:9, 1:9], images[0, ..., 0])
    assert np.array_equal(grid[10:18, 10:18], images[4, ..., 0])
    rgb = np.asarray(Image.open(io.BytesIO(grid_png(np.repeat(images, 3, axis=3)))))
    assert rgb.shape == (8 + 2, 5 * 8 + 6, 3)
    with pytest.raises(ValueError):
        grid_png(images.astype(np.float32))


def test_checkpoint_round_trip(world: DiffusionWorld, tmp_path) -> None:
    path = tmp_path / "ddpm.safetensors"
    sha = save_ddpm(path, world.arch, world.state_dict)
    arch, state_dict = load_ddpm(path)
    assert len(sha) == 64 and arch == world.arch
    assert all(torch.equal(state_dict[k], v) for k, v in world.state_dict.items())
