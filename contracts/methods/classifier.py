"""The classifier methods: each one's params schema, paper, scopes and cost model.

One ``ClassifierMethodSpec`` per method; its implementation is the file of the same name
under ``workers/engine/unlearning/`` (``sisa`` runs as its own job path,
``workers.engine.unlearning.sisa``). A method joins by a spec here and an entry in
``CLASSIFIER_METHODS``; ``tests/workers/engine/unlearning/test_methods.py`` fails while
either side lacks the other.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.methods.base import (
    DEFAULT_BUDGET_FRACTION,
    ClassifierMethodSpec,
    ForgetLossParams,
    IterativeParams,
    MethodParams,
    epochs_field,
)

JUNG_OPC = (
    "Jung et al., 'OPC: One-Point-Contraction Unlearning Toward Deep Feature "
    "Forgetting', arXiv:2507.07754, 2025"
)
CHEN_BOUNDARY = (
    "Chen et al., 'Boundary Unlearning: Rapid Forgetting of Deep Networks via "
    "Shifting the Decision Space', CVPR 2023, arXiv:2303.11570"
)
KURMANJI = "Kurmanji et al., 'Towards Unbounded Machine Unlearning', NeurIPS 2023, arXiv:2302.09880"
FAN_SALUN = (
    "Fan et al., 'SalUn: Empowering Machine Unlearning via Gradient-based Weight "
    "Saliency in Both Image Classification and Generation', ICLR 2024, arXiv:2310.12508"
)
BOURTOULE_SISA = "Bourtoule et al., Machine Unlearning (SISA), IEEE S&P 2021, arXiv:1912.03817"


# --------------------------------------------------------------------------- params


class FinetuneParams(IterativeParams):
    epochs: int | None = epochs_field("retain set")
    lr: float = Field(0.01, gt=0, le=10, description="Learning rate.")


class L1SparseParams(IterativeParams):
    epochs: int | None = epochs_field("retain set")
    lr: float = Field(0.01, gt=0, le=10, description="Learning rate.")
    alpha: float = Field(
        5e-4,
        ge=0,
        le=1,
        description="Initial l1 weight gamma; decays linearly to 0 over the epochs.",
    )


class GradientAscentParams(ForgetLossParams):
    epochs: int | None = epochs_field("forget set")
    lr: float = Field(1e-4, gt=0, le=10, description="Learning rate.")
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 penalty.")


class NegGradPlusParams(ForgetLossParams):
    epochs: int | None = epochs_field("retain set")
    lr: float = Field(0.01, gt=0, le=10, description="Learning rate.")
    retain_weight: float = Field(
        0.95,
        ge=0,
        le=1,
        description="beta in beta * CE(retain) - (1 - beta) * CE(forget).",
    )


class RandomLabelParams(ForgetLossParams):
    epochs: int | None = epochs_field("forget set")
    lr: float = Field(0.01, gt=0, le=10, description="Learning rate.")
    retain_weight: float = Field(
        1.0,
        ge=0,
        le=100,
        description="Weight of the retain cross-entropy added at every step (0: forget only).",
    )


class SalUnParams(RandomLabelParams):
    lr: float = Field(0.013, gt=0, le=10, description="Learning rate (paper: 0.013).")
    mask_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Share of weights, by forget-gradient magnitude, that may change.",
    )


class BoundaryShrinkParams(ForgetLossParams):
    epochs: int | None = epochs_field("forget set")
    lr: float = Field(1e-5, gt=0, le=10, description="Learning rate (paper: 1e-5).")
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 penalty.")
    bound: float = Field(
        0.1,
        gt=0,
        le=1,
        description="L-inf size of the FGSM step that finds the neighbour class, in [0, 1] "
        "pixel units (paper: 0.1).",
    )


class BoundaryExpandingParams(ForgetLossParams):
    epochs: int | None = epochs_field("forget set")
    lr: float = Field(1e-5, gt=0, le=10, description="Learning rate (paper: 1e-5).")
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 penalty.")


class ScrubParams(ForgetLossParams):
    epochs: int | None = epochs_field("retain set (min epochs)")
    max_epochs: int = Field(
        2, ge=0, le=1000, description="How many of the first epochs also take max steps."
    )
    lr: float = Field(5e-4, gt=0, le=10, description="Learning rate (paper: 5e-4).")
    temperature: float = Field(4.0, gt=0, le=100, description="Distillation temperature.")
    kl_weight: float = Field(
        0.001, ge=0, le=100, description="alpha: weight of KL(teacher||student) on retain."
    )
    ce_weight: float = Field(
        0.99, ge=0, le=100, description="gamma: weight of the retain cross-entropy."
    )
    forget_weight: float = Field(
        1.0, gt=0, le=100, description="Weight of the KL maximised on the forget set."
    )


class BadTeacherParams(ForgetLossParams):
    epochs: int | None = epochs_field("mixed set (paper: 1)")
    lr: float = Field(1e-4, gt=0, le=10, description="Learning rate (paper: 1e-4).")
    optimizer: Literal["sgd", "adam"] = Field("adam", description="Optimizer (paper: adam).")
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 penalty.")
    retain_fraction: float = Field(
        0.3, gt=0, le=1, description="Share of the retain set distilled (paper: 0.3)."
    )
    temperature: float = Field(1.0, gt=0, le=100, description="Distillation temperature.")
    stochastic_teacher: bool = Field(
        False,
        description=(
            "Two phases instead of mixed batches: erase with the random teacher on the "
            "forget set, then reconstruct from the original on retain (Zhang et al. 2023)."
        ),
    )


class SSDParams(MethodParams):
    selection_weighting: float = Field(
        10.0,
        gt=0,
        le=1e6,
        description="alpha: dampen a parameter when I_forget > alpha * I_full (paper: 10).",
    )
    dampening_constant: float = Field(
        1.0, gt=0, le=1e6, description="lambda: the shrink factor is lambda * I_full / I_forget."
    )
    exponent: float = Field(
        1.0, gt=0, le=10, description="The shrink factor is raised to this power (paper: 1)."
    )
    full_set_samples: int | None = Field(
        None,
        ge=1,
        description="Estimate I_full on a seeded subset of this many training samples "
        "(retain + forget); empty: all of them, or as many as budget_fraction of the "
        "original's training allows (at least 1000).",
    )
    budget_fraction: float = Field(
        DEFAULT_BUDGET_FRACTION,
        gt=0,
        le=1,
        description="Share of the original's training (epochs x training samples, in "
        "sample passes) the two gradient passes may spend when full_set_samples is empty.",
    )


class SlugParams(MethodParams):
    forget_accuracy_target: float | None = Field(
        None,
        ge=0,
        le=1,
        description=(
            "Stop growing the step once forget accuracy is at or below this. Empty: 0 for "
            "class-wise forgetting, else the test accuracy (what an unseen sample gets)."
        ),
    )
    max_relative_step: float = Field(
        2.0,
        gt=0,
        le=100,
        description="Largest step, as a multiple of the layer's weight norm.",
    )
    search_iterations: int | None = Field(
        None,
        ge=1,
        le=50,
        description="Bisection steps of the step-size search per layer. Empty: 12, fewer "
        "(not under 6) where budget_fraction of the original's training allows less.",
    )
    max_layers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Pareto-front layers tried, most important first. Empty: 4, fewer "
        "where budget_fraction of the original's training allows less.",
    )
    budget_fraction: float = Field(
        DEFAULT_BUDGET_FRACTION,
        gt=0,
        le=1,
        description="Share of the original's training (epochs x training samples, in "
        "sample passes) the search may spend when its size is left empty.",
    )
    retain_gradient_samples: int | None = Field(
        None,
        ge=8,
        description="Retain samples used for the retain gradient. Empty: 1024, fewer (not "
        "under 256) where budget_fraction of the original's training allows less.",
    )


class OPCParams(ForgetLossParams):
    epochs: int | None = epochs_field("forget set")
    lr: float = Field(0.01, gt=0, le=10, description="Learning rate.")
    contraction_weight: float = Field(
        1.0,
        gt=0,
        le=1e4,
        description="Weight of the mean squared feature norm of forget samples.",
    )
    retain_weight: float = Field(
        1.0, ge=0, le=100, description="Weight of the retain cross-entropy at every step."
    )


class RetrainParams(MethodParams):
    epochs: int | None = Field(
        None,
        ge=1,
        le=500,
        description=(
            "Override the recipe's epochs (a cheaper reference); leave empty for an "
            "exact retrain with the original recipe."
        ),
    )
    use_recipe_seed: bool = Field(
        True,
        description="Use the original recipe's seed (true) or this method's 'seed' (false).",
    )


class SisaParams(BaseModel):
    """SISA takes no params: what it retrains is fixed by the version's own sharding."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # Published as it always was: an object with no properties and nothing else
        # (pydantic would add a title and reorder the keys).
        return {"type": "object", "properties": {}, "additionalProperties": False}


# --------------------------------------------------------------------------- cost model


def _relabel_epoch(params: Any, n_forget: int, n_retain: int) -> float:
    # A forget batch, plus a retain batch per step when the retain term is on.
    return n_forget * (2.0 if params.retain_weight > 0 else 1.0)


def _salun_fixed(params: Any, n_forget: int, n_retain: int) -> float:
    return float(n_forget)  # the saliency gradient over the forget set


def _scrub_fixed(params: Any, n_forget: int, n_retain: int) -> float:
    return float(params.max_epochs * n_forget * 4 / 3)  # the max steps on the forget set


# SSD: fewer samples make a noisy I_full, and shrinking needs a good one.
SSD_MIN_FULL_SET = 1000


def _ssd_fixed(params: Any, n_forget: int, n_retain: int) -> float:
    # One gradient pass over the forget set and one over (a subset of) all data.
    full = n_forget + n_retain
    return float(n_forget + min(full, params.full_set_samples or full))


def _ssd_fit(params: Any, n_forget: int, n_retain: int, allowed: float | None) -> dict[str, Any]:
    """Estimate I_full on fewer samples when all of them would overrun the budget."""
    full = n_forget + n_retain
    if params.full_set_samples is not None or allowed is None or n_forget + full <= allowed:
        return {}
    return {"full_set_samples": int(min(full, max(SSD_MIN_FULL_SET, allowed - n_forget)))}


# SLUG: the paper-scale search, and the smallest one a budget may shrink it to.
SLUG_REFERENCE_LAYERS, SLUG_REFERENCE_ITERATIONS, SLUG_REFERENCE_RETAIN = 4, 12, 1024
SLUG_MIN_ITERATIONS, SLUG_MIN_RETAIN = 6, 256


def _slug_fixed(params: Any, n_forget: int, n_retain: int) -> float:
    # Two gradients, then layers x bisection steps of no-grad checks in big eval
    # batches (about a quarter of a training pass per sample, bench/cost.py measures).
    retain = params.retain_gradient_samples or SLUG_REFERENCE_RETAIN
    grads = n_forget + min(n_retain, retain)
    layers = params.max_layers or SLUG_REFERENCE_LAYERS
    iterations = params.search_iterations or SLUG_REFERENCE_ITERATIONS
    return float(grads + layers * (iterations + 1) * (n_forget + params.retain_probe_size) / 4)


def _slug_fit(params: Any, n_forget: int, n_retain: int, allowed: float | None) -> dict[str, Any]:
    """Try fewer layers, then fewer bisection steps, then a smaller retain gradient
    sample, until the search fits (fields given explicitly stay as given)."""
    size = {
        "max_layers": params.max_layers or SLUG_REFERENCE_LAYERS,
        "search_iterations": params.search_iterations or SLUG_REFERENCE_ITERATIONS,
        "retain_gradient_samples": params.retain_gradient_samples or SLUG_REFERENCE_RETAIN,
    }
    floors = {
        "max_layers": 1,
        "search_iterations": SLUG_MIN_ITERATIONS,
        "retain_gradient_samples": SLUG_MIN_RETAIN,
    }

    def cost() -> float:
        return _slug_fixed(params.model_copy(update=size), n_forget, n_retain)

    for name in ("max_layers", "search_iterations", "retain_gradient_samples"):
        while allowed is not None and getattr(params, name) is None and cost() > allowed:
            if size[name] <= floors[name]:
                break
            step = 1 if name != "retain_gradient_samples" else 128
            size[name] = max(floors[name], size[name] - step)
    return size


# --------------------------------------------------------------------------- specs

RETRAIN = ClassifierMethodSpec(
    name="retrain",
    exact=True,
    paper=(
        "Exact unlearning by retraining; the reference of Bourtoule et al., 'Machine "
        "Unlearning', IEEE S&P 2021, arXiv:1912.03817, and of every benchmark since"
    ),
    summary="Retrain from scratch on the retain set with the original training recipe.",
    params=RetrainParams,
)

SISA = ClassifierMethodSpec(
    name="sisa",
    exact=True,
    paper=BOURTOULE_SISA,
    summary="Retrain only the shards that held the forgotten samples, from the last "
    "checkpoint before their first slice. Needs a version trained with {'sisa': ...}.",
    params=SisaParams,
)

FINETUNE = ClassifierMethodSpec(
    name="finetune",
    paper=(
        "Warnecke et al., 'Machine Unlearning of Features and Labels', NDSS 2023, "
        "arXiv:2108.11577; as evaluated in Jia et al., 'Model Sparsity Can Simplify "
        "Machine Unlearning', NeurIPS 2023, arXiv:2304.04934"
    ),
    summary="Fine-tune on the retain set (FT).",
    params=FinetuneParams,
    default_epochs=10,
    walks="retain",
)

L1_SPARSE = ClassifierMethodSpec(
    name="l1_sparse",
    paper=(
        "Jia et al., 'Model Sparsity Can Simplify Machine Unlearning', NeurIPS 2023, "
        "arXiv:2304.04934"
    ),
    summary="Fine-tune on the retain set with a linearly decaying l1 penalty (l1-sparse).",
    params=L1SparseParams,
    default_epochs=10,
    walks="retain",
    # The l1 term walks every weight at every step: about a quarter more per pass.
    epoch_cost=lambda params, n_forget, n_retain: 1.25 * n_retain,
)

GRADIENT_ASCENT = ClassifierMethodSpec(
    name="gradient_ascent",
    paper=(
        "Thudi et al., 'Unrolling SGD: Understanding Factors Influencing Machine "
        "Unlearning', IEEE EuroS&P 2022, arXiv:2109.13398; Graves et al., 'Amnesiac "
        "Machine Learning', AAAI 2021, arXiv:2010.10981"
    ),
    summary="Maximise the cross-entropy of the forget set (NegGrad / GA).",
    params=GradientAscentParams,
    default_epochs=5,
)

NEGGRAD_PLUS = ClassifierMethodSpec(
    name="neggrad_plus",
    paper=KURMANJI,
    summary="beta * CE(retain) - (1 - beta) * CE(forget), one batch of each per step (NegGrad+).",
    params=NegGradPlusParams,
    default_epochs=5,
    walks="retain",
    # A retain batch and a forget batch per step.
    epoch_cost=lambda params, n_forget, n_retain: 2.0 * n_retain,
)

RANDOM_LABEL = ClassifierMethodSpec(
    name="random_label",
    paper=(
        "Graves et al., 'Amnesiac Machine Learning', AAAI 2021, arXiv:2010.10981; as "
        "evaluated in Fan et al., 'SalUn', ICLR 2024, arXiv:2310.12508"
    ),
    summary="Random-label fine-tuning of the forget set plus retain cross-entropy (RL).",
    params=RandomLabelParams,
    default_epochs=10,
    epoch_cost=_relabel_epoch,
)

SALUN = ClassifierMethodSpec(
    name="salun",
    paper=FAN_SALUN,
    summary="Saliency mask from forget-loss gradients, then masked random-label fine-tuning.",
    params=SalUnParams,
    default_epochs=10,
    epoch_cost=_relabel_epoch,
    fixed_cost=_salun_fixed,
)

BOUNDARY_SHRINK = ClassifierMethodSpec(
    name="boundary_shrink",
    paper=CHEN_BOUNDARY,
    summary="Fine-tune the forgotten class toward its nearest neighbour classes (class-wise only).",
    params=BoundaryShrinkParams,
    scopes=frozenset({"labels"}),
    default_epochs=10,
    # The attack on the original, then the step.
    epoch_cost=lambda params, n_forget, n_retain: 2.0 * n_forget,
)

BOUNDARY_EXPANDING = ClassifierMethodSpec(
    name="boundary_expanding",
    paper=CHEN_BOUNDARY,
    summary="Train the forgotten class into an extra shadow neuron, then prune it (class-wise).",
    params=BoundaryExpandingParams,
    scopes=frozenset({"labels"}),
    default_epochs=10,
)

SCRUB = ClassifierMethodSpec(
    name="scrub",
    paper=KURMANJI,
    summary="Teacher-student max/min steps: diverge on forget, agree on retain (SCRUB).",
    params=ScrubParams,
    default_epochs=5,
    walks="retain",
    # The student's pass plus the teacher's forward.
    epoch_cost=lambda params, n_forget, n_retain: n_retain * 4 / 3,
    fixed_cost=_scrub_fixed,
)

BAD_TEACHER = ClassifierMethodSpec(
    name="bad_teacher",
    paper=(
        "Chundawat et al., 'Can Bad Teaching Induce Forgetting? Unlearning in Deep "
        "Networks using an Incompetent Teacher', AAAI 2023, arXiv:2205.08096; stochastic "
        "variant: Zhang et al., 'Machine Unlearning Methodology base on Stochastic "
        "Teacher Network', ADMA 2023, arXiv:2308.14322"
    ),
    summary="Competent/incompetent teacher distillation (Bad Teacher), optionally two-phase.",
    params=BadTeacherParams,
    default_epochs=1,
    walks="retain",
    # The student's pass plus two teachers' forwards over forget + a retain share.
    epoch_cost=lambda params, n_forget, n_retain: (
        (n_forget + params.retain_fraction * n_retain) * 5 / 3
    ),
)

SSD = ClassifierMethodSpec(
    name="ssd",
    paper=(
        "Foster et al., 'Fast Machine Unlearning Without Retraining Through Selective "
        "Synaptic Dampening', AAAI 2024, arXiv:2308.07707"
    ),
    summary="Shrink parameters far more important to the forget set than to all data (SSD).",
    params=SSDParams,
    fixed_cost=_ssd_fixed,
    fit_budget=_ssd_fit,
)

SLUG = ClassifierMethodSpec(
    name="slug",
    paper=(
        "Cai et al., 'Targeted Unlearning with Single Layer Unlearning Gradient', ICML "
        "2025, arXiv:2407.11867"
    ),
    summary="Single layer, single gradient: a searched step on one Pareto-optimal layer (SLUG).",
    params=SlugParams,
    fixed_cost=_slug_fixed,
    fit_budget=_slug_fit,
)

OPC = ClassifierMethodSpec(
    name="opc",
    paper=JUNG_OPC,
    summary="Retain cross-entropy plus the squared feature norm of forget samples (OPC).",
    params=OPCParams,
    default_epochs=10,
    epoch_cost=_relabel_epoch,
)

# Every classifier method; the engine registers an implementation for each except sisa.
CLASSIFIER_METHODS: tuple[ClassifierMethodSpec, ...] = (
    RETRAIN,
    SISA,
    FINETUNE,
    L1_SPARSE,
    GRADIENT_ASCENT,
    NEGGRAD_PLUS,
    RANDOM_LABEL,
    SALUN,
    BOUNDARY_SHRINK,
    BOUNDARY_EXPANDING,
    SCRUB,
    BAD_TEACHER,
    SSD,
    SLUG,
    OPC,
)
# Methods with a job path of their own rather than an engine ``UnlearningMethod``.
OWN_JOB_PATH = frozenset({"sisa"})
