"""The ``ddpm`` family's schemas: its architecture, train and generate params.

Pydantic only, like all of ``contracts``: the API validates train, generate and unlearn
requests with these models and publishes their JSON schemas without importing torch or
diffusers, so nothing here may import either (a test checks that).
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.common import CHECKPOINT_UPLOADS, DEVICE_PATTERN, BetaSchedule, SamplerName
from contracts.family import FamilyDeclaration
from contracts.judge import JudgeParams

DiffusionFamily = Literal["ddpm"]
PresetName = Literal["tiny8", "small16"]

MAX_GENERATE_IMAGES = 4096


class DiffusionArchitecture(BaseModel):
    """Everything needed to rebuild a class-conditional pixel-space DDPM.

    The network is diffusers' ``UNet2DModel`` with a learned class embedding of
    ``num_classes + 1`` rows: the last row is the *null class* that training substitutes
    with probability ``cond_drop_prob``, so one network gives both the conditional and
    the unconditional prediction that classifier-free guidance and ESD combine.
    The noise schedule is part of the architecture because a trained network only
    means something under the schedule it was trained with.
    """

    model_config = ConfigDict(extra="forbid")

    family: DiffusionFamily = Field("ddpm", description="Model family (class-conditional DDPM).")
    num_classes: int = Field(ge=2, le=1000, description="Number of real classes (no null class).")
    in_channels: int = Field(1, ge=1, le=4, description="Image channels (1 gray, 3 RGB).")
    sample_size: int = Field(
        16, ge=4, le=256, description="Side of the square images the model generates."
    )
    block_out_channels: list[int] = Field(
        default_factory=lambda: [24, 40, 48],
        min_length=1,
        max_length=6,
        description="Channels of each UNet resolution level, highest resolution first.",
    )
    layers_per_block: int = Field(1, ge=1, le=4, description="ResNet layers per UNet level.")
    attention_levels: list[bool] | None = Field(
        None,
        description=(
            "Per level, whether it has self-attention; default: the lowest resolution only "
            "(when there are at least two levels)."
        ),
    )
    attention_head_dim: int = Field(8, ge=1, le=256, description="Channels per attention head.")
    norm_num_groups: int = Field(8, ge=1, le=64, description="GroupNorm groups in every block.")
    num_train_timesteps: int = Field(
        1000, ge=10, le=4000, description="Diffusion steps T of the training schedule."
    )
    beta_schedule: BetaSchedule = Field(
        "squaredcos_cap_v2",
        description=(
            "Noise schedule; the cosine schedule (Nichol & Dhariwal 2021) wastes fewer "
            "steps on near-pure noise at small resolutions than the linear one."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        levels = len(self.block_out_channels)
        for width in self.block_out_channels:
            if width < 4 or width > 1024:
                raise ValueError(f"block_out_channels values must be in [4, 1024], got {width}")
            if width % self.norm_num_groups:
                raise ValueError(
                    f"every block width must be divisible by norm_num_groups "
                    f"({self.norm_num_groups}); {width} is not"
                )
        if self.attention_levels is not None and len(self.attention_levels) != levels:
            raise ValueError(
                f"attention_levels has {len(self.attention_levels)} entries for {levels} levels"
            )
        factor = 2 ** (levels - 1)
        if self.sample_size % factor:
            raise ValueError(
                f"sample_size {self.sample_size} must be divisible by {factor} "
                f"(2 ** (levels - 1) for {levels} levels)"
            )
        for width, attn in zip(self.block_out_channels, self.attention, strict=True):
            if attn and width % self.attention_head_dim:
                raise ValueError(
                    f"a level with attention needs a width divisible by attention_head_dim "
                    f"({self.attention_head_dim}); {width} is not"
                )
        return self

    @property
    def null_class(self) -> int:
        """Class-embedding row used for the unconditional prediction."""
        return self.num_classes

    @property
    def attention(self) -> list[bool]:
        """``attention_levels`` with the default filled in."""
        if self.attention_levels is not None:
            return list(self.attention_levels)
        levels = len(self.block_out_channels)
        return [levels > 1 and i == levels - 1 for i in range(levels)]

    def unet_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of diffusers' ``UNet2DModel`` for this architecture."""
        attention = self.attention
        return {
            "sample_size": self.sample_size,
            "in_channels": self.in_channels,
            "out_channels": self.in_channels,
            "block_out_channels": tuple(self.block_out_channels),
            "layers_per_block": self.layers_per_block,
            "down_block_types": tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention),
            "up_block_types": tuple(
                "AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)
            ),
            "attention_head_dim": self.attention_head_dim,
            "norm_num_groups": self.norm_num_groups,
            "num_class_embeds": self.num_classes + 1,
        }

    def scheduler_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of the training ``DDPMScheduler`` (epsilon prediction)."""
        return {
            "num_train_timesteps": self.num_train_timesteps,
            "beta_schedule": self.beta_schedule,
            "prediction_type": "epsilon",
            "clip_sample": True,
            "clip_sample_range": 1.0,
        }

    @classmethod
    def preset(cls, name: PresetName, num_classes: int, in_channels: int = 1) -> Self:
        """Named sizes: ``small16`` (~0.57 M parameters at 16x16 for 10 gray classes,
        the CPU benchmark size) and ``tiny8`` (~42 K parameters at 8x8, for tests)."""
        if name == "small16":
            return cls(
                num_classes=num_classes,
                in_channels=in_channels,
                sample_size=16,
                block_out_channels=[24, 40, 48],
                attention_levels=[False, False, True],
                norm_num_groups=8,
            )
        if name == "tiny8":
            return cls(
                num_classes=num_classes,
                in_channels=in_channels,
                sample_size=8,
                block_out_channels=[8, 16],
                attention_levels=[False, False],
                norm_num_groups=4,
            )
        raise ValueError(f"unknown preset {name!r}; known: small16, tiny8")


class DiffusionTrainParams(BaseModel):
    """Hyper-parameters of one DDPM training run (steps, not epochs: diffusion training
    samples a fresh timestep and noise for every image, so epochs carry no meaning)."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(2000, ge=1, le=2_000_000, description="Optimizer steps.")
    batch_size: int = Field(64, ge=1, le=4096, description="Images per optimizer step.")
    lr: float = Field(1e-3, gt=0, le=1, description="Peak AdamW learning rate.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="After warm-up: constant, or cosine decay to 0 at the last step."
    )
    lr_warmup_steps: int = Field(100, ge=0, description="Linear warm-up steps.")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay.")
    grad_clip: float | None = Field(
        1.0, gt=0, description="Clip the global gradient norm to this (none: no clipping)."
    )
    ema_decay: float = Field(
        0.999,
        ge=0,
        lt=1,
        description=(
            "Cap of the EMA decay; the decay warms up as (1+n)/(10+n) so short runs are "
            "not dominated by the random initialisation. 0 keeps no average."
        ),
    )
    cond_drop_prob: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="Probability of training on the null class (enables classifier-free guidance).",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds init, batches, noise, timesteps.")
    checkpoint_every_steps: int = Field(
        500, ge=0, description="Emit a resumable state every this many steps (0: never)."
    )
    log_every_steps: int = Field(
        50, ge=1, description="Report the mean training loss every this many steps."
    )
    device: str = Field("cpu", pattern=DEVICE_PATTERN, description="torch device to train on.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.lr_warmup_steps >= self.steps and self.steps > 1:
            raise ValueError(
                f"lr_warmup_steps ({self.lr_warmup_steps}) must be smaller than steps "
                f"({self.steps})"
            )
        return self


class GenerateParams(BaseModel):
    """One generation request: one image per entry of ``labels``.

    Image ``i`` starts from noise drawn by its own generator seeded with ``seeds[i]`` (or
    ``seed + i``), so an image depends on its seed, label and the settings, not on the
    batch it happened to be computed in.
    """

    model_config = ConfigDict(extra="forbid")

    labels: list[int] = Field(
        min_length=1,
        max_length=MAX_GENERATE_IMAGES,
        description="Class of each image to generate (repeat a class for several images).",
    )
    seeds: list[int] | None = Field(
        None, description="Seed of each image; default seed + i for image i."
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Base seed when seeds is not given.")
    guidance_scale: float = Field(
        3.0,
        ge=0,
        le=50,
        description=(
            "Classifier-free guidance w: eps = eps_null + w (eps_class - eps_null); "
            "1 is the plain conditional model, 0 the unconditional one."
        ),
    )
    num_inference_steps: int = Field(
        50, ge=1, le=1000, description="Denoising steps (at most the model's training steps)."
    )
    scheduler: SamplerName = Field(
        "ddim", description="Sampler: ddpm (ancestral), ddim (deterministic), dpm (DPM-Solver++)."
    )
    batch_size: int = Field(64, ge=1, le=1024, description="Images per forward pass.")
    device: str = Field("cpu", pattern=DEVICE_PATTERN, description="torch device to run on.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if any(label < 0 for label in self.labels):
            raise ValueError("labels must be >= 0")
        if self.seeds is not None:
            if len(self.seeds) != len(self.labels):
                raise ValueError(
                    f"seeds has {len(self.seeds)} entries but labels has {len(self.labels)}"
                )
            if any(not 0 <= s < 2**63 for s in self.seeds):
                raise ValueError("seeds must be in [0, 2**63)")
        return self

    def image_seeds(self) -> list[int]:
        """The seed of every image."""
        if self.seeds is not None:
            return list(self.seeds)
        return [self.seed + i for i in range(len(self.labels))]


DDPM = FamilyDeclaration(
    name="ddpm",
    title="Class-conditional diffusion model (DDPM)",
    summary="Generates images of a class; a class is erased and judged by classifiers of "
    "its generated images, samples and subjects are retrained away (exact).",
    data="images",
    architectures=("ddpm",),
    architecture_schema=DiffusionArchitecture,
    params={"train": DiffusionTrainParams, "generate": GenerateParams},
    job_kinds=("train", "unlearn", "evaluate", "generate"),
    scopes=("labels", "sample_ids", "subject_ids"),
    judged=True,
    # ESD (data-free, trains no conditioning layers, the paper's choice for objects) for
    # classes; retrain for subjects and samples (the only ddpm method that forgets single
    # images; exact). The fallback stays retrain.
    policy_defaults={
        "method": "retrain",
        "method_params": {},
        "class_method": "esd",
        "class_method_params": {"steps": 200, "lr": 2e-4, "batch_size": 16},
    },
    docs="docs/diffusion.md",
    uploadable=CHECKPOINT_UPLOADS,
    judge_schema=JudgeParams,
)
