"""The judge settings of the judged families (a declaration's ``judged``: ddpm, text2image).

One schema for both sides: the API validates a job's or a policy's ``judge`` with it, and
the worker fills a job submitted without one from :data:`DEFAULT_JUDGE` (the deletion
flow submits such jobs).
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.common import DEVICE_PATTERN, SamplerName


class JudgeSampler(BaseModel):
    """One sampler setting the judged images are drawn with."""

    model_config = ConfigDict(extra="forbid", strict=True)

    num_inference_steps: int = Field(ge=1, le=1000, description="Sampler steps")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of this setting's noise")
    scheduler: SamplerName | None = Field(
        default=None, description="Sampler (ddpm, ddim or dpm); the judge's scheduler if unset"
    )


class JudgeParams(BaseModel):
    """How a ddpm version is judged: images generated per class at each of several
    sampler settings and scored by every independent classifier of the dataset
    (docs/diffusion.md, "The judges")."""

    model_config = ConfigDict(extra="forbid", strict=True)

    samples_per_class: int = Field(
        16, ge=1, le=1024, description="Images generated per class at each sampler setting"
    )
    guidance_scale: float = Field(3.0, ge=0, le=50, description="Classifier-free guidance")
    num_inference_steps: int = Field(25, ge=1, le=1000, description="Sampler steps")
    scheduler: SamplerName = Field("ddim", description="Sampler: ddpm, ddim or dpm")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Same seed, same noise per class")
    batch_size: int = Field(64, ge=1, le=1024, description="Images per forward pass")
    real_images: int = Field(
        1000, ge=0, le=20_000, description="Real images the Fréchet distances compare against"
    )
    device: str = Field("cpu", pattern=DEVICE_PATTERN, description="torch device to run on.")
    attack_steps: int = Field(
        0,
        ge=0,
        le=10_000,
        description="Robustness attack: optimise the erased class's embedding (ddpm) or its "
        "caption's token embeddings (text2image) for this many steps to bring it back, and "
        "report attack_success_rate (0: no attack)",
    )
    attack_lr: float = Field(0.05, gt=0, le=10, description="Adam learning rate of the attack")
    samplers: list[JudgeSampler] | None = Field(
        default=None,
        min_length=2,
        max_length=4,
        description="The sampler settings every judge scores (2 to 4, all different); unset: "
        "num_inference_steps with seed, and twice the steps with seed + 1. A verdict "
        "passes only if every (judge, setting) cell does",
    )

    @model_validator(mode="after")
    def _distinct_samplers(self) -> Self:
        """Two equal settings would count one draw twice and call it agreement."""
        if self.samplers is not None:
            keys = [
                (s.num_inference_steps, s.seed, s.scheduler or self.scheduler)
                for s in self.samplers
            ]
            if len(set(keys)) != len(keys):
                raise ValueError("samplers must all differ (steps, seed or scheduler)")
        return self


# The settings a judged job runs with when it names none (the deletion flow's jobs).
DEFAULT_JUDGE: dict[str, Any] = JudgeParams().model_dump(mode="json")
