from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from contracts.classifier import ArchitectureConfig, TrainParams
from workers.engine.data import ImageArrays
from workers.engine.training import (
    Callbacks,
    EngineError,
    TrainingDiverged,
    TrainingStopped,
    TrainResult,
    load_resume_state,
    save_resume_state,
    train_classifier,
)

ARCH = ArchitectureConfig(name="small_cnn", num_classes=3, input_size=(8, 8), width=8)


class Recorder(Callbacks):
    """Keeps everything the loop reports; optionally asks to stop after a given step."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.progress: list[tuple[int, int]] = []
        self.logs: list[str] = []
        self.metrics: list[tuple[str, float, int]] = []
        self.checkpoints: list[dict[str, Any]] = []
        self.stop_after = stop_after

    def on_progress(self, step: int, total_steps: int) -> None:
        self.progress.append((step, total_steps))

    def on_log(self, message: str) -> None:
        self.logs.append(message)

    def on_metric(self, name: str, value: float, step: int) -> None:
        self.metrics.append((name, value, step))

    def should_stop(self) -> bool:
        return (
            self.stop_after is not None
            and bool(self.progress)
            and (self.progress[-1][0] >= self.stop_after)
        )

    def on_checkpoint(self, state: dict[str, Any]) -> None:
        self.checkpoints.append(state)


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_small_cnn_learns_mnist_digits(mnist: dict[str, ImageArrays]) -> None:
    arch = ArchitectureConfig(
        name="small_cnn",
        num_classes=10,
        width=16,
        normalize_mean=[0.1307],
        normalize_std=[0.3081],
    )
    params = TrainParams(epochs=1, batch_size=32, lr=0.05, seed=0)
    train = mnist["train"].subset(np.arange(1000))
    test = mnist["test"].subset(np.arange(500))
    callbacks = Recorder()
    result = train_classifier(arch, params, train, test, callbacks=callbacks)

    # Chance is 0.10; one epoch over 1000 digits should be far above it.
    assert result.metrics["test_accuracy"] > 0.5, result.metrics
    assert result.metrics["steps"] == 32 and result.metrics["samples_seen"] == 1000
    assert result.metrics["epochs"] == 1 and result.metrics["wall_seconds"] > 0
    assert np.isfinite(result.metrics["train_loss"]) and np.isfinite(result.metrics["test_loss"])
    assert callbacks.progress[-1] == (32, 32)
    assert [s for s, _ in callbacks.progress] == list(range(33))
    assert {name for name, _, _ in callbacks.metrics} >= {
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
    }
    assert any("epoch 1/1" in line for line in callbacks.logs)
    assert len(result.history) == 1 and result.history[0]["test_accuracy"] == pytest.approx(
        result.metrics["test_accuracy"]
    )


def test_same_seed_gives_identical_weights(tiny: ImageArrays) -> None:
    params = TrainParams(epochs=2, batch_size=16, lr=0.05, seed=7)
    first = train_classifier(ARCH, params, tiny)
    second = train_classifier(ARCH, params, tiny)
    assert_same_weights(first.state_dict, second.state_dict)
    assert first.history == second.history

    other = train_classifier(ARCH, params.model_copy(update={"seed": 8}), tiny)
    assert not torch.equal(other.state_dict["fc.weight"], first.state_dict["fc.weight"])


def test_training_leaves_the_global_rng_alone(tiny: ImageArrays) -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train_classifier(ARCH, TrainParams(batch_size=32), tiny)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize(
    ("optimizer", "schedule", "stop_after"),
    [("sgd", "constant", 5), ("adam", "cosine", 7), ("sgd", "cosine", 6)],
)
def test_resume_matches_uninterrupted_run(
    tiny: ImageArrays,
    make_arrays: Callable[..., ImageArrays],
    tmp_path: Path,
    optimizer: str,
    schedule: str,
    stop_after: int,
) -> None:
    params = TrainParams(
        epochs=3,
        batch_size=32,  # 96 samples: 3 steps per epoch, 9 in all
        lr=0.05,
        optimizer=optimizer,
        lr_schedule=schedule,
        checkpoint_every_steps=2,
        seed=3,
    )
    test = make_arrays(n=30, seed=1)
    full = train_classifier(ARCH, params, tiny, test)

    interrupted = Recorder(stop_after=stop_after)
    with pytest.raises(TrainingStopped):
        train_classifier(ARCH, params, tiny, test, callbacks=interrupted)
    state = interrupted.checkpoints[-1]
    # Through disk, as the runner does, to prove the state survives weights_only loading.
    save_resume_state(state, tmp_path / "resume.pt")
    resumed_callbacks = Recorder()
    resumed = train_classifier(
        ARCH,
        params,
        tiny,
        test,
        callbacks=resumed_callbacks,
        resume=load_resume_state(tmp_path / "resume.pt"),
    )

    assert_same_weights(full.state_dict, resumed.state_dict)
    assert resumed.history == full.history
    for key in ("steps", "samples_seen", "train_loss", "test_accuracy"):
        assert resumed.metrics[key] == full.metrics[key]
    assert resumed_callbacks.progress[0] == (state["step"], 9)


def test_checkpoints_come_every_n_steps_and_at_epoch_ends(tiny: ImageArrays) -> None:
    callbacks = Recorder()
    params = TrainParams(epochs=2, batch_size=16, checkpoint_every_steps=4)  # 6 steps/epoch
    train_classifier(ARCH, params, tiny, callbacks=callbacks)
    at = [(c["step"], c["epoch"], c["batch_in_epoch"]) for c in callbacks.checkpoints]
    assert at == [(4, 0, 4), (6, 1, 0), (8, 1, 2), (12, 2, 0)]
    assert all(t.device.type == "cpu" for t in callbacks.checkpoints[0]["model"].values())


def test_should_stop_raises_training_stopped(tiny: ImageArrays) -> None:
    callbacks = Recorder(stop_after=2)
    with pytest.raises(TrainingStopped, match="step 2/") as info:
        train_classifier(ARCH, TrainParams(epochs=5, batch_size=16), tiny, callbacks=callbacks)
    assert info.value.step == 2
    assert callbacks.progress[-1][0] == 2


def test_huge_learning_rate_diverges(tiny: ImageArrays) -> None:
    # The request schema caps lr at 10; the loop's own guard must still hold for callers
    # that build params in code, so bypass validation with model_copy.
    params = TrainParams(epochs=3, batch_size=16, checkpoint_every_steps=1)
    params = params.model_copy(update={"lr": 1e9})
    callbacks = Recorder()
    with pytest.raises(
        TrainingDiverged, match=r"(loss is (nan|inf)|weights became inf/NaN) (at|by) step \d+/18"
    ) as info:
        train_classifier(ARCH, params, tiny, callbacks=callbacks)
    assert 1 <= info.value.step <= 18
    # Every state handed out before the failure still holds finite weights.
    for state in callbacks.checkpoints:
        assert all(torch.isfinite(t).all() for t in state["model"].values())


def test_injected_inf_weight_diverges_at_first_step(tiny: ImageArrays) -> None:
    init = train_classifier(ARCH, TrainParams(batch_size=96), tiny).state_dict
    init["fc.bias"] = torch.tensor([float("inf"), 0.0, 0.0])
    with pytest.raises(TrainingDiverged, match="step 1/"):
        train_classifier(ARCH, TrainParams(batch_size=32), tiny, init_state_dict=init)


def test_init_state_dict_fine_tunes_from_given_weights(tiny: ImageArrays) -> None:
    base = train_classifier(ARCH, TrainParams(epochs=2, batch_size=16, lr=0.05), tiny)
    tuned = train_classifier(
        ARCH, TrainParams(batch_size=96, lr=1e-6, seed=99), tiny, init_state_dict=base.state_dict
    )
    # One tiny step from the given weights stays close to them, far from a fresh init.
    assert torch.allclose(tuned.state_dict["fc.weight"], base.state_dict["fc.weight"], atol=1e-3)
    bad = dict(base.state_dict)
    bad.pop("fc.bias")
    with pytest.raises(EngineError, match="missing"):
        train_classifier(ARCH, TrainParams(), tiny, init_state_dict=bad)


def test_out_of_range_labels_are_reported_clearly(tiny: ImageArrays) -> None:
    labels = tiny.labels.copy()
    labels[5] = 3
    bad = ImageArrays(tiny.images, labels, tiny.sample_ids)
    with pytest.raises(EngineError, match=r"s0-5.*label 3.*num_classes=3"):
        train_classifier(ARCH, TrainParams(), bad)
    with pytest.raises(EngineError, match="test set"):
        train_classifier(ARCH, TrainParams(), tiny, test=bad)
    with pytest.raises(EngineError, match="empty"):
        train_classifier(ARCH, TrainParams(), tiny.subset([]))


def test_max_train_samples_uses_a_seeded_subset(tiny: ImageArrays) -> None:
    params = TrainParams(batch_size=8, max_train_samples=40, seed=5)
    a = train_classifier(ARCH, params, tiny)
    b = train_classifier(ARCH, params, tiny)
    assert a.metrics["samples_seen"] == 40
    assert_same_weights(a.state_dict, b.state_dict)


def test_resume_refuses_a_state_from_another_run(tiny: ImageArrays, tmp_path: Path) -> None:
    callbacks = Recorder()
    params = TrainParams(batch_size=32)
    train_classifier(ARCH, params, tiny, callbacks=callbacks)
    state = callbacks.checkpoints[-1]
    with pytest.raises(EngineError, match="params"):
        train_classifier(ARCH, params.model_copy(update={"lr": 0.5}), tiny, resume=state)
    with pytest.raises(EngineError, match="training set"):
        train_classifier(ARCH, params, tiny.subset(np.arange(50)), resume=state)
    # A finished run's last state resumes to the same result without further steps.
    done: TrainResult = train_classifier(ARCH, params, tiny, resume=state)
    assert done.metrics["steps"] == 3
    bogus = tmp_path / "bogus.pt"
    torch.save({"format": "other"}, bogus)
    with pytest.raises(EngineError, match="not a training resume state"):
        load_resume_state(bogus)


def test_other_architectures_train(tiny: ImageArrays) -> None:
    for arch in (
        ArchitectureConfig(name="mlp", num_classes=3, input_size=(8, 8), width=16),
        ArchitectureConfig(name="resnet18", num_classes=3, input_size=(8, 8), width=8),
    ):
        result = train_classifier(arch, TrainParams(batch_size=48, lr=0.05), tiny)
        assert result.metrics["steps"] == 2
        assert all(torch.isfinite(t).all() for t in result.state_dict.values())
