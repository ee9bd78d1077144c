"""The diffusion-erasure methods (ddpm, and the prompt families text2image and
stable_diffusion): each one's params schemas, paper, families and data needs.

One ``DiffusionMethodSpec`` per method; its implementation is the file of the same name
under ``workers/engine/diffusion/unlearning/`` (``salun`` there is ``DiffusionSalUn``).
On ddpm what is erased is a class (scope ``labels``); on a prompt family a concept named
by prompts (scope ``concept``). Only the exact retrain also drops single samples or
subjects: it trains again on whatever remains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.common import DEVICE_OR_AUTO_PATTERN
from contracts.methods.base import CLASSIFIER_SCOPES, MethodSpec

# Which UNet2DModel parameters a method trains (ESD's ``train_method``). UNet2DModel has
# no cross-attention: the class reaches the network through ``class_embedding``, added to
# the time embedding that every ResNet block reads through its ``time_emb_proj``. Those
# are the layers that read the condition, so they stand in for ESD's cross-attention.
TrainableSubset = Literal["full", "noxattn", "xattn"]
# On UNet2DConditionModel (prompt families) also "kv": only the cross-attention key and
# value projections, Concept Ablation's default.
PromptSubset = Literal["full", "noxattn", "xattn", "kv"]


# --------------------------------------------------------------------------- params


class DiffusionMethodParams(BaseModel):
    """Options every diffusion method accepts; subclasses re-declare defaults."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds every draw of the run.")
    device: str = Field(
        "auto",
        pattern=DEVICE_OR_AUTO_PATTERN,
        description="torch device; 'auto' uses CUDA when available, else CPU.",
    )
    steps: int = Field(400, ge=1, le=1_000_000, description="Optimizer steps.")
    batch_size: int = Field(16, ge=1, le=4096, description="Images per optimizer step.")
    lr: float = Field(1e-4, gt=0, le=1, description="Adam learning rate.")
    shift_probe_size: int = Field(
        32,
        ge=1,
        le=4096,
        description=(
            "Fixed noisy inputs on which the end-of-run epsilon shift per class is measured "
            "(a cheap signal; the judge's forget rate is the real verdict)."
        ),
    )


class DiffusionRetrainParams(DiffusionMethodParams):
    train_steps: int | None = Field(
        None,
        ge=1,
        le=2_000_000,
        description="Override the recipe's steps (a cheaper reference); empty: the recipe's.",
    )
    use_recipe_seed: bool = Field(
        True, description="Use the original recipe's seed (true) or this method's seed."
    )


class ESDParams(DiffusionMethodParams):
    lr: float = Field(1e-4, gt=0, le=1, description="Adam learning rate.")
    steps: int = Field(400, ge=1, le=1_000_000, description="Optimizer steps (iterations).")
    negative_guidance: float = Field(
        1.0, ge=0, le=20, description="eta: how far past 'unconditional' the target is pushed."
    )
    train_method: TrainableSubset = Field(
        "noxattn",
        description=(
            "Which parameters train: noxattn (ESD-u, everything but the conditioning "
            "pathway, time embedding and output layers; erases globally, the paper's "
            "choice for objects), xattn (ESD-x, only the layers that read the class), full."
        ),
    )
    trajectories: int = Field(
        64, ge=1, le=100_000, description="Frozen-model samples recorded per erased class."
    )
    ddim_steps: int = Field(50, ge=2, le=1000, description="DDIM steps of those samples.")
    guidance_scale: float = Field(
        3.0, ge=0, le=50, description="Classifier-free guidance of those samples."
    )


class ConceptAblationParams(DiffusionMethodParams):
    anchor_label: int = Field(ge=0, description="The class the erased classes are mapped onto.")
    lr: float = Field(1e-4, gt=0, le=1, description="Adam learning rate.")
    steps: int = Field(400, ge=1, le=1_000_000, description="Optimizer steps.")
    train_method: TrainableSubset = Field(
        "xattn",
        description=(
            "Which parameters train: xattn (the layers that read the class, the analogue of "
            "the paper's cross-attention K/V), noxattn, or full."
        ),
    )
    anchor_source: Literal["generated", "real"] = Field(
        "generated",
        description=(
            "generated: the parent's own samples of the anchor (paper); real: retain-set "
            "images of the anchor class."
        ),
    )
    anchor_images: int = Field(
        64, ge=1, le=100_000, description="How many anchor samples to generate."
    )
    ddim_steps: int = Field(50, ge=2, le=1000, description="DDIM steps of generated anchors.")
    guidance_scale: float = Field(3.0, ge=0, le=50, description="Guidance of generated anchors.")
    anchor_loss_weight: float = Field(
        1.0, ge=0, le=1000, description="Weight of the denoising loss that keeps the anchor."
    )


class ConceptAblationPromptParams(DiffusionMethodParams):
    """On prompt families the anchor is the concept scope's anchor prompt."""

    lr: float = Field(1e-4, gt=0, le=1, description="Adam learning rate.")
    steps: int = Field(400, ge=1, le=1_000_000, description="Optimizer steps.")
    train_method: PromptSubset = Field(
        "kv",
        description=(
            "Which parameters train: kv (the cross-attention key/value projections, the "
            "paper's default), xattn (all cross-attention layers), noxattn, or full."
        ),
    )
    anchor_images: int = Field(
        64, ge=1, le=100_000, description="How many anchor-prompt samples to generate."
    )
    ddim_steps: int = Field(50, ge=2, le=1000, description="DDIM steps of those samples.")
    guidance_scale: float = Field(3.0, ge=0, le=50, description="Guidance of those samples.")
    anchor_loss_weight: float = Field(
        1.0, ge=0, le=1000, description="Weight of the denoising loss that keeps the anchor."
    )


class GradientAscentParams(DiffusionMethodParams):
    lr: float = Field(1e-5, gt=0, le=1, description="Adam learning rate.")
    steps: int = Field(100, ge=1, le=1_000_000, description="Optimizer steps.")
    retain_weight: float = Field(
        1.0, ge=0, le=1000, description="Weight of the retain denoising loss."
    )


class DiffusionSalUnParams(DiffusionMethodParams):
    lr: float = Field(1e-4, gt=0, le=1, description="Adam learning rate.")
    steps: int = Field(400, ge=1, le=1_000_000, description="Optimizer steps.")
    mask_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Share of weights, by forget-gradient magnitude, that may change.",
    )
    retain_weight: float = Field(
        1e-3,
        ge=0,
        le=1000,
        description="Weight of the retain denoising loss (alpha; the DDPM reference uses 1e-3).",
    )
    saliency_draws: int = Field(
        4, ge=1, le=1000, description="Noise/timestep draws per forget image for the gradient."
    )


class UCEParams(DiffusionMethodParams):
    steps: int = Field(1, ge=1, le=1, description="Closed form: one solve (kept for the schema).")
    lam: float = Field(
        0.1,
        gt=0,
        le=1e6,
        description="lambda: weight of ||W - W_old||^2, which keeps directions no prompt names.",
    )
    erase_scale: float = Field(1.0, gt=0, le=1e4, description="Weight of the erase terms.")
    preserve_scale: float = Field(
        1.0, ge=0, le=1e4, description="Weight of the preserved prompts' terms (0: none)."
    )
    projections: list[str] = Field(
        default_factory=lambda: ["to_k", "to_v"],
        min_length=1,
        description="Which cross-attention projections to edit (to_k, to_v).",
    )


class UNOParams(DiffusionMethodParams):
    lr: float = Field(1e-4, gt=0, le=1, description="Adam learning rate.")
    steps: int = Field(200, ge=1, le=1_000_000, description="Optimizer steps.")
    forget_loss: Literal["remap", "ascent"] = Field(
        "remap",
        description=(
            "remap: the erased label must predict what the model predicts for a random "
            "other class (bounded); ascent: negative denoising loss on the erased images."
        ),
    )
    retain_weight: float = Field(
        1.0,
        ge=0,
        le=1000,
        description="Weight of the retain gradient added after the projection.",
    )
    train_method: TrainableSubset = Field(
        "full", description="Which parameters train: full, noxattn or xattn (as for ESD)."
    )


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True, kw_only=True)
class DiffusionMethodSpec(MethodSpec):
    """A diffusion-erasure method.

    ``families`` are where the engine's erasure itself runs (``ddpm`` through
    ``unlearn``, a prompt family through ``unlearn_concepts``); ``retrain_families`` are
    families on which a job of this name trains a new model on the retained samples
    instead (``workers.jobs``), with the same params.
    """

    params: type[DiffusionMethodParams]
    families: tuple[str, ...] = ("ddpm",)
    retrain_families: tuple[str, ...] = ()
    # Params on the prompt families when they differ (e.g. no anchor class there).
    concept_params: type[DiffusionMethodParams] | None = None
    needs_forget_images: bool = False
    needs_retain_images: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.families:
            raise TypeError(f"{self.name}: families must not be empty")

    @property
    def job_families(self) -> tuple[str, ...]:
        extra = tuple(f for f in self.retrain_families if f not in self.families)
        return (*self.families, *extra)

    @property
    def erases_concepts(self) -> bool:
        """Whether the engine's erasure takes prompts (runs on a prompt family)."""
        return bool(set(self.families) - {"ddpm"})

    def params_for(self, family: str) -> type[DiffusionMethodParams]:
        if family != "ddpm" and self.concept_params is not None:
            return self.concept_params
        return self.params

    def scopes_for(self, family: str) -> list[str]:
        """ddpm is class-conditional (``labels``), the other families prompt-conditioned
        (``concept``); an exact retrain forgets samples and subjects too."""
        if self.exact:
            return sorted(CLASSIFIER_SCOPES)
        return ["labels"] if family == "ddpm" else ["concept"]

    def describe(self, family: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": family,
            "exact": self.exact,
            "paper": self.paper,
            "summary": self.summary,
            "params_schema": self.params_for(family).model_json_schema(),
            "scopes": self.scopes_for(family),
            "supports_loreun": False,
            "needs_forget_images": self.needs_forget_images,
            "needs_retain_images": self.needs_retain_images,
        }


# --------------------------------------------------------------------------- specs

# The summaries are published byte for byte as before the declarations moved here,
# including the runs of spaces their wrapped docstrings left in.
RETRAIN = DiffusionMethodSpec(
    name="retrain",
    exact=True,
    paper=(
        "Exact unlearning by retraining; the reference of Bourtoule et al., 'Machine "
        "Unlearning', IEEE S&P 2021, arXiv:1912.03817, and of every erasure benchmark"
    ),
    summary="Retrain from scratch on the retained classes with the original recipe.",
    params=DiffusionRetrainParams,
    # On text2image the job trains a new text2image model on the retained samples.
    retrain_families=("ddpm", "text2image"),
    needs_retain_images=True,
)

ESD = DiffusionMethodSpec(
    name="esd",
    families=("ddpm", "text2image", "stable_diffusion"),
    paper=(
        "Gandikota et al., 'Erasing Concepts from Diffusion Models', ICCV 2023, "
        "arXiv:2303.07345, https://erasing.baulab.info"
    ),
    summary="Negative-guidance fine-tuning: asked for the class, predict the frozen model's"
    "     unconditional noise pushed away from the class.",
    params=ESDParams,
)

CONCEPT_ABLATION = DiffusionMethodSpec(
    name="concept_ablation",
    families=("ddpm", "text2image", "stable_diffusion"),
    paper=(
        "Kumari et al., 'Ablating Concepts in Text-to-Image Diffusion Models', ICCV 2023, "
        "arXiv:2303.13516, https://www.cs.cmu.edu/~concept-ablation/"
    ),
    summary="Map each erased class onto an anchor class: under the erased label, predict "
    "what     the frozen model predicts for the anchor.",
    params=ConceptAblationParams,
    concept_params=ConceptAblationPromptParams,
)

GRADIENT_ASCENT = DiffusionMethodSpec(
    name="gradient_ascent",
    paper=(
        "Baseline of Fan et al., 'SalUn', ICLR 2024, arXiv:2310.12508 (GA), and of "
        "Zhang et al., 'UnlearnCanvas', NeurIPS 2024 D&B, arXiv:2402.11846"
    ),
    summary="Ascend the denoising loss on the erased class, descend it on the others.",
    params=GradientAscentParams,
    needs_forget_images=True,
    needs_retain_images=True,
)

SALUN = DiffusionMethodSpec(
    name="salun",
    paper=(
        "Fan et al., 'SalUn: Empowering Machine Unlearning via Gradient-based Weight "
        "Saliency in Both Image Classification and Generation', ICLR 2024, arXiv:2310.12508"
    ),
    summary="Gradient-saliency mask, then remap the erased class onto random other classes.",
    params=DiffusionSalUnParams,
    needs_forget_images=True,
    needs_retain_images=True,
)

UCE = DiffusionMethodSpec(
    name="uce",
    families=("text2image", "stable_diffusion"),
    paper=(
        "Gandikota et al., 'Unified Concept Editing in Diffusion Models', WACV 2024, "
        "arXiv:2308.14761, https://unified.baulab.info"
    ),
    summary="Closed-form edit of the cross-attention key/value projections: erased prompts"
    "     map to the anchor's keys and values, preserved prompts keep theirs.",
    params=UCEParams,
)

UNO = DiffusionMethodSpec(
    name="uno",
    paper=(
        "'UNO: Unlearning via Orthogonalization in Generative models' (loss-gradient "
        "orthogonalisation; MNIST and CelebA); projection as in Farajtabar et al., "
        "'Orthogonal Gradient Descent for Continual Learning', AISTATS 2020"
    ),
    summary="Project the forget gradient off the retain gradient, then step on both.",
    params=UNOParams,
    needs_forget_images=True,
    needs_retain_images=True,
)

# Every diffusion method; the engine registers an implementation for each.
DIFFUSION_METHODS: tuple[DiffusionMethodSpec, ...] = (
    RETRAIN,
    ESD,
    CONCEPT_ABLATION,
    GRADIENT_ASCENT,
    SALUN,
    UCE,
    UNO,
)
