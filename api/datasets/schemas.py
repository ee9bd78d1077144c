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
    modality: Literal["images", "text"] = "images"
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
    modality: Literal["images", "text"] = Field(
        description="images: samples are pictures; text: question/answer pairs or texts"
    )
    label_names: list[str]
    image_shape: list[int]
    current_version: int
    created_at: datetime
    created_by: str | None
    num_samples: int = 0
    num_subjects: int = 0


class SamplePublic(ORMModel):
    """A sample; an image sample has ``image_url``, a text sample its text fields."""

    sample_id: str
    subject_id: str | None
    label: int | None
    label_name: str | None = None
    caption: str | None
    split: str
    image_url: str | None = Field(default=None, description="PNG of an image sample")
    text: str | None = Field(default=None, description="A plain-text sample's text")
    question: str | None = Field(default=None, description="A QA sample's question")
    answer: str | None = Field(default=None, description="A QA sample's answer")
    paraphrased_answer: str | None = None
    perturbed_answers: list[str] | None = None
    kind: str | None = Field(default=None, description="e.g. qa, biography, world_fact")


class SamplesPage(BaseModel):
    data: list[SamplePublic]
    count: int
    next_cursor: str | None = None
