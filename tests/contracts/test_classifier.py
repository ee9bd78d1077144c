"""The classifier family's schemas (torch-free: the contracts-bottom import contract)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.classifier import ArchitectureConfig, EvaluateParams, TrainParams


def test_defaults_are_valid() -> None:
    arch = ArchitectureConfig(name="small_cnn", num_classes=10)
    assert arch.in_channels == 1 and tuple(arch.input_size) == (28, 28) and arch.width == 32
    assert TrainParams().optimizer == "sgd"
    assert EvaluateParams().batch_size == 256


def test_round_trips_through_json() -> None:
    arch = ArchitectureConfig(
        name="resnet18",
        num_classes=100,
        in_channels=3,
        input_size=(32, 32),
        normalize_mean=[0.5, 0.4, 0.3],
        normalize_std=[0.2, 0.2, 0.2],
    )
    assert ArchitectureConfig.model_validate_json(arch.model_dump_json()) == arch


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "vgg", "num_classes": 10},
        {"name": "mlp", "num_classes": 1},
        {"name": "mlp", "num_classes": 10, "in_channels": 5},
        {"name": "mlp", "num_classes": 10, "input_size": (2, 28)},
        {"name": "mlp", "num_classes": 10, "width": 2},
        {"name": "mlp", "num_classes": 10, "unknown": 1},
        {"name": "mlp", "num_classes": 10, "normalize_mean": [0.5], "normalize_std": [0.0]},
        {"name": "mlp", "num_classes": 10, "normalize_mean": [0.5]},
        {
            "name": "mlp",
            "num_classes": 10,
            "in_channels": 3,
            "normalize_mean": [0.5],
            "normalize_std": [0.2],
        },
        {"name": "mnist_cnn", "num_classes": 10, "input_size": (32, 32)},
        {"name": "mnist_cnn", "num_classes": 10, "in_channels": 3},
        # Narrower resnet18 stages abort the process inside oneDNN on AVX2 CPUs.
        {"name": "resnet18", "num_classes": 10, "width": 4},
        {"name": "resnet18", "num_classes": 10, "width": 12},
    ],
)
def test_invalid_architectures_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        ArchitectureConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"epochs": 0},
        {"batch_size": 0},
        {"lr": 0},
        {"lr": 11},
        {"optimizer": "rmsprop"},
        {"lr_schedule": "step"},
        {"label_smoothing": 1.0},
        {"device": "tpu"},
        {"max_train_samples": 0},
        {"momentum": 1.0},
        {"extra": True},
    ],
)
def test_invalid_train_params_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        TrainParams(**kwargs)


def test_train_params_fields_are_documented() -> None:
    assert all(f.description for f in TrainParams.model_fields.values())
