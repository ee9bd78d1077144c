from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    Field,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from api.schemas import ORMModel, RequestBody, strict_body, validate_strictly
from contracts import families, family_names, get_family
from contracts.classifier import CLASSIFIER
from core.deletion.policy import DeletionPolicy

# Built from the family declarations (contracts), so a new family is offered here too.
ModelFamily = Literal[tuple(family_names())]  # type: ignore[valid-type]
Architecture = Union[tuple(f.architecture_schema for f in families())]  # type: ignore[valid-type]  # noqa: UP007
# Families whose architecture carries a ``family`` key, and the schema of each; an
# architecture without one is a classifier's (``architecture.name``) unless the body's
# ``family`` names another (``causal_lm``: ``{"base": "tiny-llama"}``).
_FAMILY_SCHEMAS: dict[str, type[BaseModel]] = {
    f.name: f.architecture_schema
    for f in families()
    if "family" in f.architecture_schema.model_fields
}
_DEFAULT_SCHEMA = CLASSIFIER.architecture_schema


def _family_of(architecture: BaseModel) -> str:
    """The family an architecture (validated) belongs to."""
    named = getattr(architecture, "family", None)
    if isinstance(named, str):
        return named
    return next(
        (f.name for f in families() if isinstance(architecture, f.architecture_schema)),
        CLASSIFIER.name,
    )


class ModelCreate(RequestBody):
    """A classifier (``architecture.name``), a class-conditional DDPM
    (``architecture.family = "ddpm"``), a prompt-conditioned ``text2image`` model, a
    ``stable_diffusion`` pipeline (its folder is uploaded as a version; see
    docs/diffusion.md), or a ``causal_lm`` (``family`` given, ``architecture.base``:
    smollm2-135m, tiny-llama or uploaded; see docs/llm.md)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$")
    family: ModelFamily | None = Field(
        None,
        description="One of GET /api/v1/families; by default read from the architecture "
        "(a diffusion architecture carries its family, one with a name is a classifier)",
    )
    architecture: Architecture
    description: str = Field(default="", max_length=5000)

    @model_validator(mode="before")
    @classmethod
    def _family_into_architecture(cls, data: Any) -> Any:
        # {"family": "ddpm", "architecture": {...}} may leave the family out of the arch.
        family = data.get("family") if isinstance(data, dict) else None
        if isinstance(family, str) and family in _FAMILY_SCHEMAS:
            arch = data.get("architecture", {})
            if isinstance(arch, dict) and "family" not in arch:
                data = {**data, "architecture": {**arch, "family": data["family"]}}
        return data

    @field_validator("architecture", mode="wrap")
    @classmethod
    def _pick_schema(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        """Validate against one schema, chosen by the ``family`` key (else the body's
        ``family``), so errors name the field (``architecture.num_classes``) instead of
        listing every union member."""
        if isinstance(value, dict):
            family = value.get("family")
            schema = _FAMILY_SCHEMAS.get(family) if isinstance(family, str) else None
            given = info.data.get("family")
            if schema is None and isinstance(given, str) and given in family_names():
                schema = get_family(given).architecture_schema
            return validate_strictly(schema or _DEFAULT_SCHEMA, value)
        return handler(value)

    @model_validator(mode="after")
    def _family_matches(self) -> ModelCreate:
        actual: ModelFamily = _family_of(self.architecture)
        if self.family is not None and self.family != actual:
            raise ValueError(
                f"family is {self.family!r} but the architecture is a {actual} architecture"
            )
        self.family = actual
        return self


# PUT /models/{id}/deletion-policy: the shared DeletionPolicy schema, held to the rules
# of every request body.
DeletionPolicyBody = Annotated[
    DeletionPolicy, WrapValidator(partial(strict_body, model=DeletionPolicy))
]


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
