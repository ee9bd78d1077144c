from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas import ORMModel
from workers.engine.config import EvaluateParams, TrainParams


class ForgetScope(BaseModel):
    """Exactly one of: data subjects, samples, or whole classes."""

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

    @model_validator(mode="after")
    def _exactly_one(self) -> ForgetScope:
        given = [k for k in ("subject_ids", "sample_ids", "labels") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of subject_ids, sample_ids or labels")
        return self

    def as_dict(self) -> dict[str, list[Any]]:
        return {k: v for k, v in self.model_dump().items() if v}


class SisaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shards: int = Field(ge=1, le=64, description="Disjoint shards, one model each")
    slices: int = Field(1, ge=1, le=64, description="Incremental slices per shard (checkpoints)")


class TrainJobCreate(BaseModel):
    """Train a classifier on a dataset version; the result is a new model version."""

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
    params: TrainParams = Field(default_factory=TrainParams)
    sisa: SisaSpec | None = Field(
        default=None, description="Train a SISA ensemble so later deletions are exact and cheap"
    )


class UnlearnJobCreate(BaseModel):
    """Make a version forget a scope; the result is a new version whose parent it is."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["unlearn"]
    model_version_id: str = Field(max_length=40)
    method: str = Field(max_length=60, description="See GET /api/v1/methods")
    forget: ForgetScope
    params: dict[str, Any] = Field(default_factory=dict, description="The method's params")
    evaluate: bool = Field(True, description="Measure UA/RA/TA/MIA etc. after unlearning")
    reference: Literal["retrain"] | None = Field(
        default=None, description="Also run (or reuse) an exact retrain to compare against"
    )


class EvaluateJobCreate(BaseModel):
    """Measure accuracy and loss of a version on splits of a dataset."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["evaluate"]
    model_version_id: str = Field(max_length=40)
    dataset_id: str | None = Field(
        default=None, max_length=40, description="Defaults to the dataset it was trained on"
    )
    dataset_version: int | None = Field(default=None, ge=1)
    splits: list[Literal["train", "test"]] = Field(default_factory=lambda: ["test"], min_length=1)
    forget: ForgetScope | None = Field(
        default=None, description="Also measure forgetting of this scope (UA, RA, TA, MIA, ...)"
    )
    reference_version_id: str | None = Field(
        default=None, max_length=40, description="A retrained version to compare outputs with"
    )
    params: EvaluateParams = Field(default_factory=EvaluateParams)


JobCreate = Annotated[
    TrainJobCreate | UnlearnJobCreate | EvaluateJobCreate, Field(discriminator="kind")
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
