from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

import contracts.judge
from api.schemas import ORMModel, RequestBody, validate_strictly
from contracts import families
from contracts.family import ParamsKind
from contracts.text2image import ConceptScope


def noted_errors(exc: ValidationError, note: str) -> list[InitErrorDetails]:
    """``exc``'s issues with ``note`` after each message, their types (and so the API's
    hints: "send a JSON integer") kept."""
    return [
        {
            "type": PydanticCustomError(error["type"], "{msg}", {"msg": error["msg"] + note}),
            "loc": error["loc"],
            "input": error.get("input"),
        }
        for error in exc.errors(include_url=False)
    ]


def _closest(schemas: list[type[BaseModel]], value: dict[str, Any]) -> ValidationError | None:
    """None when ``value`` is valid under one of ``schemas``; else the errors of the one
    it fits best (fewest unknown fields, then fewest issues; the first on a tie)."""
    failures: list[tuple[int, int, int, ValidationError]] = []
    for rank, schema in enumerate(schemas):
        try:
            validate_strictly(schema, value)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            unknown = sum(e["type"] == "extra_forbidden" for e in errors)
            failures.append((unknown, len(errors), rank, exc))
            continue
        return None
    unknown, count, rank, exc = min(failures, key=lambda f: f[:3])
    return exc


def family_params(kind: ParamsKind) -> PlainValidator:
    """The ``params`` validator of a ``kind`` job body, published in OpenAPI as one of the
    schemas the families declare for ``kind`` (so the generated client and the dashboard
    see every family's fields).

    Which family applies is known only once the service has looked the model up, so the
    body keeps ``params`` as the JSON object given, and the service reads it with the
    family's own schema (``api.jobs.service.family_params``). Here it is only refused when
    no family's schema takes it at all (``{"epochs": true}``), with the issues of the
    schema it fits best. A params model built in code counts with the fields it was given.
    """
    schemas: list[type[BaseModel]] = []
    for family in families():
        schema = family.params_schema(kind)
        if schema is not None and schema not in schemas:
            schemas.append(schema)

    def given(value: Any) -> dict[str, Any]:
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json", exclude_unset=True)
        if not isinstance(value, dict):
            raise PydanticCustomError("dict_type", "params must be a JSON object")
        exc = _closest(schemas, value)
        if exc is not None:
            note = f" (no model family's {kind} params take this; read as {exc.title})"
            raise ValidationError.from_exception_data(exc.title, noted_errors(exc, note))
        return dict(value)

    union = Union[tuple(schemas)]  # type: ignore[valid-type]  # noqa: UP007
    return PlainValidator(given, json_schema_input_type=union)


def _schema_names(kind: ParamsKind) -> str:
    """``classifier: TrainParams, ddpm: DiffusionTrainParams, ...`` for a description."""
    return ", ".join(
        f"{f.name}: {schema.__name__}"
        for f in families()
        if (schema := f.params_schema(kind)) is not None
    )


_TRAIN_PARAMS = family_params("train")
_GENERATE_PARAMS = family_params("generate")
_EVALUATE_PARAMS = family_params("evaluate")


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

    ``params`` are the train params the model's family declares (``GET /api/v1/families``:
    ``params_schemas.train``); fields left out take that schema's defaults.
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
    params: Annotated[dict[str, Any], _TRAIN_PARAMS] = Field(
        default_factory=dict,
        description=f"The model family's train params ({_schema_names('train')})",
    )
    sisa: SisaSpec | None = Field(
        default=None, description="Train a SISA ensemble so later deletions are exact and cheap"
    )


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
    params: Annotated[dict[str, Any], _EVALUATE_PARAMS] = Field(
        default_factory=dict,
        description=f"The model family's evaluate params ({_schema_names('evaluate')}); "
        "a family that declares none takes none",
    )
    judge: JudgeParams | None = Field(
        default=None,
        description="ddpm only: judge settings; forget.labels names the classes scored as "
        "erased (splits are not used)",
    )


class GenerateJobCreate(RequestBody):
    """Generate from a version with its family's generate params: images, one per entry
    of ``params.labels`` (ddpm) or ``params.prompts`` (text2image, stable_diffusion), PNGs
    and a grid in the job's artifacts; or a completion per prompt (causal_lm), in the
    job's ``metrics.completions``. Same seeds and settings, same output."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["generate"]
    model_version_id: str = Field(max_length=40)
    params: Annotated[dict[str, Any], _GENERATE_PARAMS] = Field(
        description=f"The model family's generate params ({_schema_names('generate')})"
    )
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
