"""A tiny world for the unlearning tests: a learnable toy dataset and two trained models.

* ``classwise``: a clean 4-class set; the forget set is every sample of class 0.
* ``random``: the same kind of set where 10 % of the training samples carry a wrong
  label the model has memorised. Those samples are the forget set: a model that never
  saw them gets them "wrong" (it predicts their true cluster), so forgetting shows up as
  a large, unambiguous drop in forget accuracy instead of a 2-point wobble.

Everything is 8x8 gray images and a 64-unit MLP so the whole module runs in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from contracts.classifier import ArchitectureConfig, TrainParams
from workers.engine.data import ImageArrays
from workers.engine.training import train_classifier
from workers.engine.unlearning.base import UnlearnData

NUM_CLASSES = 4


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    # The CI box is 2 cores shared by several jobs; threads only add contention here.
    torch.set_num_threads(1)


def blobs(n: int, seed: int, prefix: str) -> ImageArrays:
    """Each class is a fixed random 8x8 prototype; samples add strong pixel noise."""
    rng = np.random.default_rng(1234)
    prototypes = rng.uniform(0, 255, size=(NUM_CLASSES, 8, 8, 1))
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % NUM_CLASSES
    rng.shuffle(labels)
    images = prototypes[labels] + rng.normal(0, 60, size=(n, 8, 8, 1))
    return ImageArrays(
        images=np.clip(images, 0, 255).astype(np.uint8),
        labels=labels.astype(np.int64),
        sample_ids=[f"{prefix}-{i}" for i in range(n)],
    )


@dataclass
class World:
    arch: ArchitectureConfig
    recipe: TrainParams
    state_dict: dict[str, torch.Tensor]
    data: UnlearnData


ARCH = ArchitectureConfig(name="mlp", num_classes=NUM_CLASSES, input_size=(8, 8), width=64)
RECIPE = TrainParams(
    epochs=60,
    batch_size=32,
    lr=3e-3,
    optimizer="adam",
    weight_decay=0.0,
    label_smoothing=0.1,
    seed=0,
)


@pytest.fixture(scope="session")
def classwise_world() -> World:
    train = blobs(320, seed=1, prefix="train")
    test = blobs(160, seed=2, prefix="test")
    recipe = RECIPE.model_copy(update={"epochs": 20})
    trained = train_classifier(ARCH, recipe, train)
    forget_mask = train.labels == 0
    data = UnlearnData(
        forget=train.subset(forget_mask),
        retain=train.subset(~forget_mask),
        test=test.subset(test.labels != 0),
        forget_labels=[0],
    )
    return World(ARCH, recipe, trained.state_dict, data)


@pytest.fixture(scope="session")
def random_world() -> World:
    train = blobs(320, seed=3, prefix="train")
    test = blobs(160, seed=4, prefix="test")
    rng = np.random.default_rng(5)
    flipped = rng.choice(len(train), size=len(train) // 10, replace=False)
    labels = train.labels.copy()
    labels[flipped] = (labels[flipped] + rng.integers(1, NUM_CLASSES, len(flipped))) % NUM_CLASSES
    train = ImageArrays(train.images, labels, train.sample_ids)
    trained = train_classifier(ARCH, RECIPE, train)
    forget_mask = np.zeros(len(train), dtype=bool)
    forget_mask[flipped] = True
    data = UnlearnData(
        forget=train.subset(forget_mask),
        retain=train.subset(~forget_mask),
        test=test,
        scope="sample_ids",
    )
    return World(ARCH, RECIPE, trained.state_dict, data)
