from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from api.schemas import ORMModel, RequestBody

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$"


class BuiltinSource(RequestBody):
    type: Literal["builtin"] = "builtin"
    name: str = Field(description="A built-in source; see GET /datasets/sources")
    limit: int | None = Field(
        default=None, ge=1, le=100_000, description="Keep only the first N train samples"
    )


class DatasetCreate(RequestBody):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = Field(default="", max_length=5000)
    source: BuiltinSource


class SourcePublic(BaseModel):
    name: str
    description: str
    available: bool
    reason: str | None = None


class DatasetVersionPublic(ORMModel):
    id: str
    dataset_id: str
    version: int
    content_hash: str
    num_samples: int
    split_counts: dict[str, int]
    reason: str
    created_at: datetime


class DatasetPublic(ORMModel):
    id: str
    name: str
    description: str
    source: str
    label_names: list[str]
    image_shape: list[int]
    current_version: int
    created_at: datetime
    created_by: str | None
    num_samples: int = 0
    num_subjects: int = 0


class SamplePublic(ORMModel):
    sample_id: str
    subject_id: str | None
    label: int | None
    label_name: str | None = None
    caption: str | None
    split: str
    image_url: str


class SamplesPage(BaseModel):
    data: list[SamplePublic]
    count: int
    next_cursor: str | None = None
