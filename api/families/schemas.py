from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class FamilyParamsSchemas(BaseModel):
    """The JSON Schema of each kind of job's ``params`` (null: the family has no such job
    or its job takes no params object)."""

    train: dict[str, Any] | None = None
    generate: dict[str, Any] | None = None
    evaluate: dict[str, Any] | None = None


class FamilyUpload(BaseModel):
    format: str = Field(description="Upload format name")
    description: str = Field(description="What the uploaded file is")


class FamilyPublic(BaseModel):
    """One model family: what it is, and the schemas a client builds its forms from."""

    name: str = Field(description="As a model's family field holds it")
    title: str
    summary: str
    data: Literal["images", "text", "none"] = Field(
        description="What its datasets hold (none: it is not trained here)"
    )
    architectures: list[str] = Field(description="Architecture names offered")
    architecture_schema: dict[str, Any] = Field(
        description="JSON Schema of a model's architecture (POST /models)"
    )
    params_schemas: FamilyParamsSchemas
    job_kinds: list[str] = Field(description="Kinds of job its models run")
    scopes: list[str] = Field(description="Forget scopes its models accept")
    judged: bool = Field(description="Whether unlearning is verified by judges of generations")
    judge_schema: dict[str, Any] | None = Field(
        description="JSON Schema of the judge settings (a job's or a policy's judge)"
    )
    policy_defaults: dict[str, Any] = Field(
        description="The deletion policy a model of this family has until one is set"
    )
    methods: list[str] = Field(description="Unlearning methods that apply (GET /methods)")
    docs: str = Field(description="Documentation page, relative to the repository")
    uploadable: list[FamilyUpload] = Field(
        description="Checkpoint formats POST /models/{id}/versions accepts (empty: none)"
    )
