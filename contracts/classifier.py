"""The ``classifier`` family's schemas: its architecture, train and evaluate params.

Pydantic only, like all of ``contracts``: the API validates requests with these and the
engine builds networks from them, and neither may pull in torch through this module.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.common import CHECKPOINT_UPLOADS, DEVICE_PATTERN
from contracts.family import FamilyDeclaration

ArchitectureName = Literal["small_cnn", "resnet18", "mnist_cnn", "mlp", "torchvision", "timm"]
# Bring-your-own architectures: ``model`` names one entry of the library's registry.
ZOO_ARCHITECTURES = ("torchvision", "timm")

_Side = Annotated[int, Field(ge=4, le=512)]

# digit-recognizer-py's network has fixed shapes: a 3x3x128 map after three 2x pools.
MNIST_CNN_INPUT_SIZE = (28, 28)
MNIST_MEAN = [0.1307]
MNIST_STD = [0.3081]


class ArchitectureConfig(BaseModel):
    """Everything needed to rebuild a classifier network and its input pipeline."""

    model_config = ConfigDict(extra="forbid")

    name: ArchitectureName = Field(description="Network family.")
    num_classes: int = Field(ge=2, le=1000, description="Number of output classes.")
    in_channels: int = Field(
        1, ge=1, le=4, description="Channels the network expects (1 gray, 3 RGB)."
    )
    input_size: tuple[_Side, _Side] = Field(
        (28, 28), description="(height, width) the images are resized to."
    )
    width: int = Field(
        32,
        ge=4,
        le=512,
        description=(
            "Base channel width for small_cnn/resnet18, hidden units for mlp; "
            "ignored by mnist_cnn, whose shapes are fixed."
        ),
    )
    model: str | None = Field(
        None,
        max_length=128,
        description=(
            "For name torchvision or timm: the library's model name (resnet50, vit_b_16, "
            "convnext_tiny, resnet18d, ...), built untrained at input_size and in_channels "
            "with a num_classes head; weights come only from an uploaded checkpoint."
        ),
    )
    normalize_mean: list[float] | None = Field(
        None, description="Per-channel mean subtracted inside the network (inputs in [0, 1])."
    )
    normalize_std: list[float] | None = Field(
        None, description="Per-channel std divided inside the network."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.normalize_mean is None) != (self.normalize_std is None):
            raise ValueError("normalize_mean and normalize_std must be given together")
        for field in ("normalize_mean", "normalize_std"):
            values = getattr(self, field)
            if values is not None and len(values) != self.in_channels:
                raise ValueError(
                    f"{field} has {len(values)} values but in_channels is {self.in_channels}"
                )
        if self.normalize_std is not None and any(s <= 0 for s in self.normalize_std):
            raise ValueError("normalize_std values must be > 0")
        self._check_model()
        if self.name == "resnet18" and self.width % 8:
            # Measured: on an AVX2 CPU, oneDNN's strided 1x1 backward kernel for a
            # downsampling stage of 4 channels corrupted the heap and aborted the worker
            # (width 8 and up train cleanly). Refused here, before a job can crash a worker.
            raise ValueError(
                f"resnet18 width must be a multiple of 8 (got {self.width}): narrower "
                "stages crash oneDNN's CPU kernels; use 8, 16, 32, 64, ..."
            )
        if self.name == "mnist_cnn" and (
            tuple(self.input_size) != MNIST_CNN_INPUT_SIZE or self.in_channels != 1
        ):
            raise ValueError(
                "mnist_cnn takes 1-channel 28x28 input only "
                f"(got in_channels={self.in_channels}, input_size={tuple(self.input_size)})"
            )
        return self


    def _check_model(self) -> None:
        """``model`` is required for torchvision/timm, from the registry; absent otherwise."""
        if self.name not in ZOO_ARCHITECTURES:
            if self.model is not None:
                raise ValueError(f"model is only for torchvision or timm, not {self.name!r}")
            return
        if self.model is None:
            raise ValueError(f"{self.name} needs a model name, e.g. {_ZOO_EXAMPLE[self.name]}")
        from contracts.zoo_names import TIMM_MODELS, TORCHVISION_MODELS

        known = TORCHVISION_MODELS if self.name == "torchvision" else TIMM_MODELS
        if self.model not in known:
            close = difflib.get_close_matches(self.model, sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"{self.model!r} is not a {self.name} classification model "
                f"({len(known)} known){hint}"
            )


_ZOO_EXAMPLE = {"torchvision": "'resnet50'", "timm": "'resnet18d'"}


class TrainParams(BaseModel):
    """Hyper-parameters of one supervised training run."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(1, ge=1, le=500, description="Passes over the training set.")
    batch_size: int = Field(64, ge=1, le=4096, description="Samples per optimizer step.")
    lr: float = Field(0.01, gt=0, le=10, description="Initial learning rate.")
    optimizer: Literal["sgd", "adam"] = Field("sgd", description="Optimizer.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (ignored by adam).")
    weight_decay: float = Field(5e-4, ge=0, le=1, description="L2 penalty.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="constant, or cosine decay to 0 over all steps."
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Cross-entropy label smoothing.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds init, shuffling and subsampling.")
    max_train_samples: int | None = Field(
        None, ge=1, description="Train on a seeded random subset of at most this many samples."
    )
    checkpoint_every_steps: int = Field(
        200,
        ge=0,
        description="Emit a resumable state every this many steps (0: only at epoch ends).",
    )
    device: str = Field(
        "cpu", pattern=DEVICE_PATTERN, description="torch device to train on."
    )


class EvaluateParams(BaseModel):
    """Parameters of an evaluation job."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(256, ge=1, le=65536, description="Samples per forward pass.")
    device: str = Field(
        "cpu", pattern=DEVICE_PATTERN, description="torch device to run on."
    )


CLASSIFIER = FamilyDeclaration(
    name="classifier",
    title="Image classifier",
    summary="Classifies images into labelled classes: the built-in networks, or any "
    "torchvision or timm classification model by name, trained here or uploaded.",
    data="images",
    architectures=get_args(ArchitectureName),
    architecture_schema=ArchitectureConfig,
    params={"train": TrainParams, "evaluate": EvaluateParams},
    job_kinds=("train", "unlearn", "evaluate", "tune"),
    scopes=("subject_ids", "sample_ids", "labels"),
    judged=False,
    # DeletionPolicy's own defaults are the classifier's (finetune, boundary_shrink).
    policy_defaults={},
    docs="docs/concepts.md",
    uploadable=CHECKPOINT_UPLOADS,
    membership_shadows=True,
)
