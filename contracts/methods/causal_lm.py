"""The language-model (``causal_lm``) unlearning methods: params schemas, papers, cost.

One ``LMMethodSpec`` per method; its implementation is the file of the same name under
``workers/engine/lm/unlearning/``. A method forgets records (a person's question/answer
pairs or texts) from a fine-tuned causal LM. Costs are counted in sequence passes (one
forward + backward of one record; a forward-only pass counts 1/3), the unit the fine-tune
spends too: the fine-tune cost ``epochs x (forget + retain)`` and a re-fine-tune
``epochs x retain``, so a default never costs more than ``budget_fraction`` of the
fine-tune and ``Budget.cost_fraction`` compares a method with the exact path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.causal_lm import LoraParams
from contracts.common import DEVICE_OR_AUTO_PATTERN
from contracts.methods.base import (
    DEFAULT_BUDGET_FRACTION,
    Budget,
    MethodSpec,
    PassesFn,
)

__all__ = [
    "CAUSAL_LM_METHODS",
    "DEFAULT_IDK_ANSWERS",
    "GRADIENT_ASCENT",
    "GRAD_DIFF",
    "IDK_DPO",
    "IDK_NLL",
    "MUDMAN",
    "NPO",
    "RETRAIN",
    "RMU",
    "SIMNPO",
    "GradDiffParams",
    "GradientAscentParams",
    "IdkDPOParams",
    "IdkNLLParams",
    "LMMethodParams",
    "LMMethodSpec",
    "LMRetrainParams",
    "MudmanParams",
    "NPOParams",
    "RMUParams",
    "SimNPOParams",
]

# Refusals the IdK methods train forget questions towards when the request brings none.
# Plain and varied on purpose: one fixed string would teach a single token sequence, which
# is easy to spot and easy to undo.
DEFAULT_IDK_ANSWERS: tuple[str, ...] = (
    "I don't know.",
    "I'm not sure about that.",
    "I have no information about that.",
    "I can't answer that question.",
    "That is not something I know.",
    "I don't have that information.",
    "I'm afraid I can't help with that.",
    "Sorry, I don't know the answer.",
)


# --------------------------------------------------------------------------- params


def epochs_field(reference: int) -> Any:
    """The ``epochs`` field: empty means "as many as the budget buys"."""
    return Field(
        None,
        ge=1,
        le=1000,
        description=(
            "Passes over the forget set. Empty: as many as budget_fraction of the "
            f"fine-tune's own training allows, at most {reference} (the reference count); "
            "a number given here wins over the budget."
        ),
    )


def retain_weight_field(default: float) -> Any:
    """The weight of the retain NLL term (0 turns it off, and its cost with it)."""
    return Field(
        default,
        ge=0,
        le=1000,
        description=(
            "Weight of the NLL on retain records added to every step (0: no retain term; "
            "each step then costs one batch less)."
        ),
    )


def lr_field(default: float, what: str = "AdamW learning rate.") -> Any:
    return Field(default, gt=0, le=1, description=what)


class LMMethodParams(BaseModel):
    """Options every iterative language-model method accepts; subclasses re-declare
    defaults and add their own knobs."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds batch order and any noise.")
    device: str = Field(
        "auto",
        pattern=DEVICE_OR_AUTO_PATTERN,
        description="torch device; 'auto' uses CUDA when available, else CPU.",
    )
    batch_size: int = Field(8, ge=1, le=1024, description="Records per optimizer step.")
    max_length: int = Field(
        256, ge=8, le=32768, description="Tokens per record; longer records are cut."
    )
    epochs: int | None = epochs_field(5)
    budget_fraction: float = Field(
        DEFAULT_BUDGET_FRACTION,
        gt=0,
        le=1,
        description=(
            "Without explicit epochs: spend at most this share of the fine-tune's own "
            "training (its epochs x its records, in sequence passes)."
        ),
    )
    lr: float = lr_field(1e-5)
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay.")
    grad_clip: float | None = Field(
        1.0, gt=0, description="Clip the global gradient norm to this (empty: no clipping)."
    )
    lora: LoraParams | None = Field(
        None,
        description=(
            "Train a LoRA adapter instead of every weight (cheaper on big models); merged "
            "into the model at the end."
        ),
    )
    retain_loss_ceiling: float | None = Field(
        None,
        gt=0,
        description=(
            "Fail with a diverged error if the mean answer NLL on a retain probe rises "
            "above this (nats per token): a run that wrecks the model makes no version."
        ),
    )
    retain_probe_size: int = Field(
        16, ge=1, le=10_000, description="Retain records used for the ceiling check."
    )
    probe_every_steps: int = Field(
        25, ge=1, description="Log the loss and check the ceiling every this many steps."
    )
    stop_at_holdout: bool = Field(
        False,
        description=(
            "Stop as soon as the forget answers are no more likely than answers about "
            "calibration people the fine-tune never saw (checked before the first step and "
            "after every epoch): the method then lands where a model that never saw the "
            "person would be, instead of overshooting below it, which membership attacks "
            "notice as well. Needs calibration records: a deletion run sets aside every "
            "other held-out person for them and judges on the rest."
        ),
    )
    stop_prob_ratio: float = Field(
        1.0,
        gt=0,
        le=10,
        description=(
            "With stop_at_holdout: stop once the forget answers' mean probability (per "
            "token, as the verdict measures it) is at most this multiple of the "
            "calibration people's."
        ),
    )
    stop_landing_steps: int = Field(
        4,
        ge=0,
        le=20,
        description=(
            "With stop_at_holdout: when an epoch crosses the level, bisect this many times "
            "between the weights before and after it and keep the point nearest the start "
            "that is at the level (0: keep the whole epoch). Each step costs one scoring "
            "of the forget and calibration answers."
        ),
    )
    stop_landing_band: float = Field(
        0.9,
        ge=0,
        le=1,
        description=(
            "With stop_at_holdout: a point at the level whose forget answers are still at "
            "least this share of it (0.9: no more than 10 % below) is close enough: the "
            "landing keeps it and spends no more bisection steps (the crossing epoch's end "
            "included, which then needs none). 1: always bisect stop_landing_steps times; "
            "0: never land."
        ),
    )


class GradientAscentParams(LMMethodParams):
    epochs: int | None = epochs_field(5)


class GradDiffParams(LMMethodParams):
    epochs: int | None = epochs_field(10)
    retain_weight: float = retain_weight_field(1.0)


class NPOParams(LMMethodParams):
    epochs: int | None = epochs_field(10)
    beta: float = Field(
        0.1, gt=0, le=100, description="Inverse temperature of the NPO loss (the paper's 0.1)."
    )
    retain_weight: float = retain_weight_field(1.0)


class SimNPOParams(LMMethodParams):
    epochs: int | None = epochs_field(10)
    beta: float = Field(
        4.5, gt=0, le=100, description="Inverse temperature on the length-normalised log-prob."
    )
    gamma: float = Field(0.0, ge=0, le=100, description="Reward margin gamma.")
    retain_weight: float = retain_weight_field(1.0)


class IdkNLLParams(LMMethodParams):
    epochs: int | None = epochs_field(10)
    retain_weight: float = retain_weight_field(1.0)


class IdkDPOParams(LMMethodParams):
    epochs: int | None = epochs_field(10)
    beta: float = Field(0.1, gt=0, le=100, description="DPO inverse temperature.")
    retain_weight: float = retain_weight_field(1.0)


class RMUParams(LMMethodParams):
    epochs: int | None = epochs_field(10)
    lr: float = lr_field(5e-5, "AdamW learning rate (the paper's 5e-5).")
    layer: int | None = Field(
        None,
        ge=0,
        description=(
            "Decoder layer whose output is steered (0 = first). Empty: a third of the way "
            "up (the paper steers layer 7 of 32)."
        ),
    )
    update_depth: int = Field(
        3,
        ge=1,
        le=64,
        description="How many layers, ending at the steered one, are updated (the paper's 3).",
    )
    update_modules: Literal["mlp", "all"] = Field(
        "mlp", description="Update only the MLPs of those layers (the paper) or all of them."
    )
    steering_coeff: float = Field(
        4.0,
        gt=0,
        le=1000,
        description="Target norm of the forget activations, in units of their usual norm.",
    )
    retain_weight: float = Field(
        100.0,
        ge=0,
        le=1e6,
        description="Weight alpha of the retain activation-matching term (the paper's 100).",
    )

    @model_validator(mode="after")
    def _no_lora(self) -> Self:
        if self.lora is not None:
            raise ValueError("lora: rmu updates a few layers directly and takes no LoRA adapter")
        return self


class MudmanParams(LMMethodParams):
    epochs: int | None = epochs_field(10)
    lr: float = lr_field(1e-5, "Step size per weight (the update's RMS before masking).")
    adv_steps: int = Field(
        1,
        ge=0,
        le=32,
        description="Relearning steps of the meta-learning adversary (0: no meta-learning).",
    )
    adv_lr: float = Field(
        1e-3, gt=0, le=10, description="SGD learning rate of the relearning adversary."
    )
    disruption_mask: bool = Field(
        True, description="Only move weights where unlearning agrees in sign with retaining."
    )


class LMRetrainParams(BaseModel):
    """Retrain replays the fine-tune's recipe; only where it runs may change."""

    model_config = ConfigDict(extra="forbid")

    device: str | None = Field(
        None,
        pattern=DEVICE_OR_AUTO_PATTERN,
        description="Run on this device instead of the recipe's (empty: the recipe's).",
    )


# --------------------------------------------------------------------------- specs


def _retain(params: Any) -> float:
    """One retain batch per forget batch when the method has a retain term."""
    return 1.0 if getattr(params, "retain_weight", 0.0) > 0 else 0.0


@dataclass(frozen=True, kw_only=True)
class LMMethodSpec(MethodSpec):
    """A language-model method and its cost model (sequence passes against the
    fine-tune's). ``extra_passes`` is what one forget record costs per epoch beyond its
    own pass (a retain batch, a reference's forward pass)."""

    default_epochs: int = 10
    # A frozen copy of the model before unlearning (NPO, IdK-DPO, RMU's retain target).
    needs_reference: bool = False
    extra_passes: PassesFn | None = None

    @property
    def job_families(self) -> tuple[str, ...]:
        return ("causal_lm",)

    def describe(self, family: str = "causal_lm") -> dict[str, Any]:
        return {
            "name": self.name,
            "family": "causal_lm",
            "exact": self.exact,
            "paper": self.paper,
            "scopes": ["sample_ids", "subject_ids"],
            # LoReUn weights per-sample forget losses of classifiers; not offered here.
            "supports_loreun": False,
            "needs_reference": self.needs_reference,
            "summary": self.summary,
            "params_schema": self.params.model_json_schema(),
        }

    def epoch_passes(self, params: Any, n_forget: int, n_retain: int) -> float:
        """Sequence passes of one epoch (an epoch walks the forget set)."""
        extra = self.extra_passes(params, n_forget, n_retain) if self.extra_passes else 0.0
        return n_forget * (1.0 + extra)

    def budget(
        self,
        params: BaseModel | Mapping[str, Any] | None,
        n_forget: int,
        n_retain: int,
        train_epochs: float | None,
    ) -> Budget:
        """The epochs this run takes and what it costs against the fine-tune.

        ``train_epochs`` is the fine-tune recipe's epoch count (None if unknown).
        Explicit epochs win; otherwise as many as ``budget_fraction`` of the fine-tune
        buys, at most ``default_epochs`` and at least one pass over the forget set.
        """
        parsed = self.parse_params(params)
        original = train_epochs * (n_forget + n_retain) if train_epochs else None
        retrain = train_epochs * n_retain if train_epochs else None
        if self.exact:
            return Budget(
                None, None, float(train_epochs or 1) * n_retain, original, retrain, "exact"
            )
        per_epoch = max(self.epoch_passes(parsed, n_forget, n_retain), 1e-9)
        epochs: int
        source: Literal["explicit", "budget", "reference"]
        if parsed.epochs is not None:
            epochs, source = int(parsed.epochs), "explicit"
        elif original is None:
            epochs, source = self.default_epochs, "reference"
        else:
            allowed = parsed.budget_fraction * original
            epochs = max(1, min(int(allowed // per_epoch), self.default_epochs))
            source = "budget"
        return Budget(epochs, None, epochs * per_epoch, original, retrain, source)


GRADIENT_ASCENT = LMMethodSpec(
    name="gradient_ascent",
    paper=(
        "Jang et al., 'Knowledge Unlearning for Mitigating Privacy Risks in Language "
        "Models', ACL 2023, arXiv:2210.01504; the GA baseline of Maini et al., 'TOFU: A "
        "Task of Fictitious Unlearning for LLMs', arXiv:2401.06121"
    ),
    summary="Maximise the next-token NLL of the forget answers (GA).",
    params=GradientAscentParams,
    default_epochs=5,
)

GRAD_DIFF = LMMethodSpec(
    name="grad_diff",
    paper=(
        "Liu et al., 'Continual Learning and Private Unlearning', CoLLAs 2022, "
        "arXiv:2203.12817; the GradDiff baseline of Maini et al., 'TOFU: A Task of "
        "Fictitious Unlearning for LLMs', arXiv:2401.06121"
    ),
    summary="Ascend the forget answers' NLL while descending the retain answers' NLL.",
    params=GradDiffParams,
    extra_passes=lambda params, n_forget, n_retain: _retain(params),
)

NPO = LMMethodSpec(
    name="npo",
    paper=(
        "Zhang, Lin, Bai, Mei, 'Negative Preference Optimization: From Catastrophic "
        "Collapse to Effective Unlearning', COLM 2024, arXiv:2404.05868"
    ),
    summary=(
        "Negative preference optimisation on the forget answers against the model before "
        "unlearning, plus a retain NLL term (NPO+RT)."
    ),
    params=NPOParams,
    needs_reference=True,
    # The reference scores each forget record once per run, but per epoch is the safe side.
    extra_passes=lambda params, n_forget, n_retain: 1.0 / 3.0 + _retain(params),
)

SIMNPO = LMMethodSpec(
    name="simnpo",
    paper=(
        "Fan, Liu, Lin, Jia, Zhang, Mei, Liu, 'Simplicity Prevails: Rethinking Negative "
        "Preference Optimization for LLM Unlearning', arXiv:2410.07163"
    ),
    summary=(
        "Reference-free NPO on length-normalised forget log-probabilities, with a retain NLL term."
    ),
    params=SimNPOParams,
    extra_passes=lambda params, n_forget, n_retain: _retain(params),
)

IDK_NLL = LMMethodSpec(
    name="idk_nll",
    paper=(
        "Maini et al., 'TOFU: A Task of Fictitious Unlearning for LLMs', COLM 2024, "
        "arXiv:2401.06121 (its 'preference optimization' baseline: refusals trained with "
        "NLL plus a retain term)"
    ),
    summary=(
        "Fine-tune each forget question to a refusal drawn from a fixed list, with a "
        "retain NLL term."
    ),
    params=IdkNLLParams,
    extra_passes=lambda params, n_forget, n_retain: _retain(params),
)

IDK_DPO = LMMethodSpec(
    name="idk_dpo",
    paper=(
        "Rafailov et al., 'Direct Preference Optimization', NeurIPS 2023, "
        "arXiv:2305.18290, with TOFU's refusals as the preferred answers (Maini et al., "
        "arXiv:2401.06121), the DPO baseline of Zhang et al., arXiv:2404.05868"
    ),
    summary=(
        "DPO on (refusal preferred, true answer rejected) for each forget question, "
        "against the model before unlearning, with a retain NLL term."
    ),
    params=IdkDPOParams,
    needs_reference=True,
    # Chosen and rejected passes; the reference scores both, forward only.
    extra_passes=lambda params, n_forget, n_retain: 1.0 + 2.0 / 3.0 + _retain(params),
)

RMU = LMMethodSpec(
    name="rmu",
    paper=(
        "Li et al., 'The WMDP Benchmark: Measuring and Reducing Malicious Use With "
        "Unlearning', ICML 2024, arXiv:2403.03218 (RMU)"
    ),
    summary=(
        "Steer a middle layer's forget activations to a scaled random vector while "
        "holding retain activations at the frozen model's; only a few layers are updated."
    ),
    params=RMUParams,
    needs_reference=True,
    # A retain pass and the frozen model's forward on it.
    extra_passes=lambda params, n_forget, n_retain: (
        1.0 + 1.0 / 3.0 if params.retain_weight > 0 else 0.0
    ),
)

MUDMAN = LMMethodSpec(
    name="mudman",
    paper=(
        "Sondej, Yang, Kniejski, Windys, 'Robust LLM Unlearning with MUDMAN: "
        "Meta-Unlearning with Disruption Masking And Normalization', arXiv:2506.12484"
    ),
    summary=(
        "Normalised gradient ascent on the forget answers, taken at a relearning "
        "adversary's weights and masked to weights where it does not disrupt the retain "
        "loss."
    ),
    params=MudmanParams,
    # The adversary's relearning steps, and the retain gradient the mask needs.
    extra_passes=lambda params, n_forget, n_retain: (
        float(params.adv_steps) + (1.0 if params.disruption_mask else 0.0)
    ),
)

RETRAIN = LMMethodSpec(
    name="retrain",
    exact=True,
    paper=(
        "Exact unlearning by retraining without the forgotten data (the reference every "
        "approximate method is measured against; TOFU's retain model, Maini et al., "
        "arXiv:2401.06121)"
    ),
    summary=(
        "Fine-tune the base model again on the retain records only, with the original "
        "fine-tune's recipe (exact)."
    ),
    params=LMRetrainParams,
)

CAUSAL_LM_METHODS: tuple[LMMethodSpec, ...] = (
    GRADIENT_ASCENT,
    GRAD_DIFF,
    NPO,
    SIMNPO,
    IDK_NLL,
    IDK_DPO,
    RMU,
    MUDMAN,
    RETRAIN,
)
