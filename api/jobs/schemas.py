from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

import contracts.judge
from api.schemas import ORMModel, RequestBody, validate_strictly
from contracts.classifier import EvaluateParams, TrainParams
from contracts.ddpm import DiffusionTrainParams, GenerateParams
from contracts.text2image import ConceptScope, PromptGenerateParams

# Keys only DDPM training has: a params object holding one of them is DiffusionTrainParams.
_DDPM_ONLY_KEYS = set(DiffusionTrainParams.model_fields) - set(TrainParams.model_fields)


class ForgetScope(RequestBody):
    """Exactly one of: data subjects, samples, whole classes, or (text2image and
    stable_diffusion models) a concept named by prompts."""

    model_config = ConfigDict(extra="forbid")

    subject_ids: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=100_000
    )
    sample_ids: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=100_000
    )
    labels: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None, min_length=1, max_length=1000
    )
    concept: ConceptScope | None = Field(
        default=None,
        description='Prompt families only: {"prompts": ["a sneaker"], "anchor": "a photo"} '
        "erases what the prompts name by mapping it onto the anchor",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ForgetScope:
        given = [k for k in ("subject_ids", "sample_ids", "labels", "concept") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of subject_ids, sample_ids, labels or concept")
        return self

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v}


class SisaSpec(RequestBody):
    model_config = ConfigDict(extra="forbid")

    shards: int = Field(ge=1, le=64, description="Disjoint shards, one model each")
    slices: int = Field(1, ge=1, le=64, description="Incremental slices per shard (checkpoints)")


class TrainJobCreate(RequestBody):
    """Train a model on a dataset version; the result is a new model version.

    ``params`` are ``TrainParams`` for a classifier and ``DiffusionTrainParams`` for a
    ``ddpm`` model (the dataset's labels are the class condition); the service checks
    them against the model's family.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["train"]
    model_id: str = Field(max_length=40)
    dataset_id: str = Field(max_length=40)
    dataset_version: int | None = Field(
        default=None, ge=1, description="Defaults to the dataset's current version"
    )
    parent_version_id: str | None = Field(
        default=None, max_length=40, description="Fine-tune from this version of the same model"
    )
    params: TrainParams | DiffusionTrainParams = Field(
        default_factory=TrainParams,
        description="TrainParams (classifier) or DiffusionTrainParams (ddpm)",
    )
    sisa: SisaSpec | None = Field(
        default=None, description="Train a SISA ensemble so later deletions are exact and cheap"
    )

    @field_validator("params", mode="wrap")
    @classmethod
    def _pick_params(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """One schema at a time, so an error names ``params.<field>``. Keys only DDPM
        training has select DiffusionTrainParams; the service re-reads the given keys
        against the model's family either way."""
        if isinstance(value, dict):
            if _DDPM_ONLY_KEYS & set(value):
                return validate_strictly(DiffusionTrainParams, value)
            return validate_strictly(TrainParams, value)
        return handler(value)


class JudgeParams(RequestBody, contracts.judge.JudgeParams):
    __doc__ = contracts.judge.JudgeParams.__doc__
    # The schema is the contracts' (the worker fills defaults from it); the API adds the
    # request-body rules (strict, NUL and NaN refused) by inheriting RequestBody.
    model_config = ConfigDict(extra="forbid")


class UnlearnJobCreate(RequestBody):
    """Make a version forget a scope; the result is a new version whose parent it is."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["unlearn"]
    model_version_id: str = Field(max_length=40)
    method: str = Field(max_length=60, description="See GET /api/v1/methods")
    forget: ForgetScope
    params: dict[str, Any] = Field(
        default_factory=dict, max_length=100, description="The method's params"
    )
    evaluate: bool = Field(
        True,
        description="Measure UA/RA/TA/MIA etc. after unlearning (ddpm: the judge's forget "
        "rate, retained accuracy and Fréchet distances)",
    )
    reference: Literal["retrain"] | None = Field(
        default=None, description="Also run (or reuse) an exact retrain to compare against"
    )
    judge: JudgeParams | None = Field(
        default=None, description="ddpm only: judge settings for evaluate=true (defaults)"
    )


class EvaluateJobCreate(RequestBody):
    """Measure accuracy and loss of a version on splits of a dataset."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["evaluate"]
    model_version_id: str = Field(max_length=40)
    dataset_id: str | None = Field(
        default=None, max_length=40, description="Defaults to the dataset it was trained on"
    )
    dataset_version: int | None = Field(default=None, ge=1)
    splits: list[Literal["train", "test"]] = Field(
        default_factory=lambda: ["test"], min_length=1, max_length=2
    )
    forget: ForgetScope | None = Field(
        default=None, description="Also measure forgetting of this scope (UA, RA, TA, MIA, ...)"
    )
    reference_version_id: str | None = Field(
        default=None, max_length=40, description="A retrained version to compare outputs with"
    )
    params: EvaluateParams = Field(default_factory=EvaluateParams)
    judge: JudgeParams | None = Field(
        default=None,
        description="ddpm only: judge settings; forget.labels names the classes scored as "
        "erased (splits are not used)",
    )


class GenerateJobCreate(RequestBody):
    """Generate images: one per entry of ``params.labels`` (ddpm) or ``params.prompts``
    (text2image, stable_diffusion); PNGs and a grid land in the job's artifacts. Same
    seeds and settings, same bytes."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["generate"]
    model_version_id: str = Field(max_length=40)
    params: GenerateParams | PromptGenerateParams = Field(
        description="GenerateParams (labels, ddpm) or PromptGenerateParams (prompts)"
    )

    @field_validator("params", mode="wrap")
    @classmethod
    def _pick_params(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """``prompts`` selects PromptGenerateParams, otherwise GenerateParams, so an error
        names ``params.<field>``; the service checks the choice against the family."""
        if isinstance(value, dict):
            if "prompts" in value or "negative_prompts" in value:
                return validate_strictly(PromptGenerateParams, value)
            return validate_strictly(GenerateParams, value)
        return handler(value)

    grid_columns: int = Field(8, ge=1, le=256, description="Images per row of grid.png")


JobCreate = Annotated[
    TrainJobCreate | UnlearnJobCreate | EvaluateJobCreate | GenerateJobCreate,
    Field(discriminator="kind"),
]


class JobPublic(ORMModel):
    id: str
    kind: str
    state: str
    queue: str
    model_id: str | None
    dataset_id: str | None
    model_version_id: str | None
    result_version_id: str | None
    method: str | None
    params: dict[str, Any]
    spec: dict[str, Any]
    progress: float
    metrics: dict[str, Any]
    artifacts: list[dict[str, Any]]
    error: str | None
    attempt: int
    worker: str | None
    cancel_requested: bool
    created_at: datetime
    created_by: str | None
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    wall_seconds: float | None
    peak_memory_mb: float | None
    comparison: dict[str, Any] | None = Field(
        default=None, description="Against the retrained reference, once both have finished"
    )


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int
    next_cursor: str | None = None


class JobEventPublic(ORMModel):
    id: int
    type: str
    data: dict[str, Any]
    created_at: datetime


class JobEventsPublic(BaseModel):
    data: list[JobEventPublic]
    count: int
    next_cursor: str | None = None


class MetricPoint(BaseModel):
    step: int | None
    value: float
    at: datetime


class JobMetricsPublic(BaseModel):
    final: dict[str, Any]
    series: dict[str, list[MetricPoint]]


# ------------------------------------------------------------------ Compare views
# Roles in the views: "after" (the evaluated, unlearned model), "before" (the original
# it came from) and "reference" (the retrained model); each part holds the roles known.


class AtRiskSample(BaseModel):
    """A forget sample the loss-threshold attack still calls a member most confidently."""

    sample_id: str
    label: int
    predicted: int = Field(description="The unlearned model's prediction")
    loss: float | None
    score: float | None = Field(
        description="Share of non-members (test) with a higher loss: 1 looks most like "
        "training data, about 0.5 like unseen data"
    )
    score_before: float | None = Field(description="The same score under the original")
    image_url: str = Field(description="The sample's thumbnail (PNG) in this API")


class AttackView(BaseModel):
    members: str
    nonmembers: str
    roc: dict[str, list[list[float | None]]] = Field(
        description="Per role: [fpr, tpr, loss threshold] points of the threshold sweep"
    )
    auc: dict[str, float | None]
    at_risk: list[AtRiskSample]


class FeatureMapPoint(BaseModel):
    sample_id: str
    label: int
    forget: bool = Field(description="A forget sample (else a test sample)")
    after: list[float | None]
    before: list[float | None] | None = None
    predicted_after: int
    predicted_before: int | None = None


class FeatureMapView(BaseModel):
    basis: str = Field(description="Which models' features the PCA basis was fitted on")
    explained_variance_ratio: list[float | None]
    points: list[FeatureMapPoint]


class CkaView(BaseModel):
    layers: list[str]
    batch_size: int
    to_original: list[float | None] | None = None
    to_reference: list[float | None] | None = None


class JobViewsPublic(BaseModel):
    """What the Compare page shows for one evaluated model, stored by its evaluation."""

    job_id: str
    format: int
    dataset_id: str
    num_classes: int
    models: list[str] = Field(description="Roles present: after, before, reference")
    forget_labels: list[int] | None
    counts: dict[str, int] = Field(description="Samples per split (forget, retain, test)")
    class_counts: dict[str, list[int]]
    class_accuracy: dict[str, dict[str, list[float | None]]] = Field(
        description="split -> role -> accuracy per class (null: no sample of the class)"
    )
    confusion: dict[str, dict[str, list[list[int]]]] | None = Field(
        description="split (test, forget) -> role -> counts[true][predicted]; null past 50 classes"
    )
    attack: AttackView
    feature_map: FeatureMapView | None
    cka: CkaView | None


class CompareRow(BaseModel):
    """One unlearning (or evaluate) job's numbers, side by side with the others."""

    job_id: str
    kind: str
    state: str
    method: str | None
    params: dict[str, Any]
    model_id: str | None
    model_version_id: str | None
    result_version_id: str | None
    forget_kind: str | None
    forget_count: int | None
    exact: bool
    UA: float | None
    RA: float | None
    TA: float | None
    MIA: float | None
    loss_auc: float | None
    reference_job_id: str | None
    avg_gap: float | None = Field(description="Mean |Δ| over UA, RA, TA, MIA to the reference")
    seconds: float | None = Field(description="Unlearning time (else the job's wall time)")
    speedup: float | None = Field(description="Reference retraining time / this job's time")
    has_views: bool
    created_at: datetime
    finished_at: datetime | None


class ComparePublic(BaseModel):
    data: list[CompareRow]
    count: int
