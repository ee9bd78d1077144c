from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.schemas import ORMModel
from workers.engine.config import ArchitectureConfig


class ModelCreate(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$")
    family: Literal["classifier"] = Field(
        "classifier", description="Only classifiers can be registered so far"
    )
    architecture: ArchitectureConfig
    description: str = Field(default="", max_length=5000)


class ModelPublic(ORMModel):
    id: str
    name: str
    family: str
    architecture: dict[str, Any]
    description: str
    created_at: datetime
    created_by: str | None
    latest_version: int | None = None


class ModelVersionPublic(ORMModel):
    id: str
    model_id: str
    version: int
    status: str
    source: str
    sha256: str
    size_bytes: int
    config: dict[str, Any]
    metrics: dict[str, Any]
    parent_version_id: str | None
    job_id: str | None
    dataset_version_id: str | None
    created_at: datetime
    created_by: str | None


class TrainingSetPublic(BaseModel):
    dataset_id: str
    dataset_version: int
    dataset_version_id: str
    content_hash: str
    split: str
    count: int
    excluded_sample_ids: list[str] = []
    sample_ids_sha256: str | None = None
    sample_ids_url: str | None = None


class JobRef(BaseModel):
    id: str
    kind: str
    state: str
    method: str | None = None


class LineagePublic(BaseModel):
    version: ModelVersionPublic
    ancestors: list[ModelVersionPublic] = Field(description="Parent first, then its parent, ...")
    children: list[ModelVersionPublic]
    job: JobRef | None
    training_set: TrainingSetPublic | None
