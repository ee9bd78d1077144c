from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import ORMModel
from workers.engine.config import EvaluateParams, TrainParams


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
    params: EvaluateParams = Field(default_factory=EvaluateParams)


JobCreate = Annotated[TrainJobCreate | EvaluateJobCreate, Field(discriminator="kind")]


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
