from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, model_validator

from api.schemas import ORMModel, RequestBody
from core.deletion.states import RequestStatus

LegalBasis = Literal["gdpr_art17", "ccpa", "other"]


class ConceptScope(RequestBody):
    """A concept of one model: one class (a digit, a garment, a person of a face model),
    several classes, or a name looked up in the model's dataset (a label name, or a style
    or object of the objects × styles set). Give exactly one of label, labels, name."""

    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(max_length=40)
    label: int | None = Field(default=None, ge=0)
    labels: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None, min_length=1, max_length=1000
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="A label name of the model's dataset, or a style / object of the "
        "objects × styles set (every label in it); case-insensitive",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ConceptScope:
        given = [k for k in ("label", "labels", "name") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a concept gives exactly one of label, labels or name")
        return self


class RequestScope(RequestBody):
    model_config = ConfigDict(extra="forbid")

    subject_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=10_000
    )
    sample_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=100_000
    )
    concept: ConceptScope | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RequestScope:
        given = [k for k in ("subject_ids", "sample_ids", "concept") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of subject_ids, sample_ids or concept")
        return self


def _timestamp(value: Any) -> Any:
    """An ISO 8601 string is how JSON carries a time: parsed here, as strict validation
    takes only ``datetime`` objects."""
    if isinstance(value, str):
        return _DATETIME.validate_python(value)
    return value


_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)


class DeletionRequestCreate(RequestBody):
    model_config = ConfigDict(extra="forbid")

    scope: RequestScope
    legal_basis: LegalBasis
    requester_reference: str = Field(default="", max_length=200)
    received_at: Annotated[datetime | None, BeforeValidator(_timestamp)] = Field(
        default=None, description="Defaults to now (ISO 8601)"
    )


class DeletionPreviewPublic(BaseModel):
    """What filing this request would touch; see ``DeletionRequestPublic.blast_radius``."""

    scope_kind: str
    blast_radius: dict[str, Any] = Field(
        description="datasets (id → samples), samples, versions, descendants, unverifiable_versions"
    )
    nothing_to_delete: bool = Field(description="Filing it would complete at once")
    due_at: datetime = Field(description="The deadline it would get")


class Decision(RequestBody):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class DeletionItemPublic(ORMModel):
    id: str
    model_version_id: str
    state: str
    method: str
    exact: bool
    attempt: int
    job_id: str | None
    result_version_id: str | None
    verdict: dict[str, Any] | None
    history: list[dict[str, Any]]
    batch_until: datetime | None = Field(
        default=None, description="Waiting for its batch window to close until then"
    )
    job_state: str | None = Field(default=None, description="State of the item's current job")
    job_progress: float | None = Field(
        default=None, description="Progress of the item's current job, 0 to 1"
    )


class DeletionRequestPublic(ORMModel):
    id: str
    status: RequestStatus = Field(
        description="received → scoped → awaiting_approval → unlearning → verifying → "
        "completed, or rejected / cancelled (before approval) / failed (retry runs it again)"
    )
    allowed_actions: list[str] = Field(
        default=[],
        description="What the caller may do now (approve, reject, cancel, extend, advance, "
        "retry), from the request's status and the caller's role: the filer cannot approve, "
        "and only compliance and admin keys decide",
    )
    scope_kind: str
    scope: dict[str, Any] = Field(
        description="While the request is open, and to compliance and admin keys only: the "
        "subject or sample ids in clear. Once it is closed (and to every other role): "
        '{"<kind>": [], "redacted": true, "count": n}, the ids replaced everywhere by '
        "scope_commitments"
    )
    scope_commitments: list[str] = Field(
        description="sha256(deployment salt || id), hex, of each id: what the certificate "
        "states; filled when the ids are redacted (or shown in their place)"
    )
    legal_basis: str
    requester_reference: str
    received_at: datetime
    due_at: datetime
    overdue: bool = False
    due_soon: bool = False
    extended: bool
    extension_reason: str | None
    blast_radius: dict[str, Any]
    plan: list[dict[str, Any]]
    reason: str | None
    created_at: datetime
    created_by: str | None
    approved_by: str | None
    approved_at: datetime | None
    completed_at: datetime | None
    has_certificate: bool = False
    items: list[DeletionItemPublic] = []


class DeletionRequestsPublic(BaseModel):
    data: list[DeletionRequestPublic]
    count: int
    next_cursor: str | None = None


class CommentCreate(RequestBody):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=10_000)


class CommentPublic(ORMModel):
    id: str
    request_id: str
    author: str
    text: str
    created_at: datetime


class CommentsPublic(BaseModel):
    data: list[CommentPublic]
    count: int


class AttachmentPublic(ORMModel):
    id: str
    request_id: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    uploaded_by: str
    created_at: datetime


class AttachmentsPublic(BaseModel):
    data: list[AttachmentPublic]
    count: int
