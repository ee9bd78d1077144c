from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.deletion.states import OPEN, STATUSES
from models.base import Base, JSONType, UTCDateTime, utcnow

# Declared once, with the transitions between them, in core/deletion/states.py.
REQUEST_STATUSES = STATUSES
OPEN_STATUSES = OPEN


class DeletionRequest(Base):
    """A data subject's (or a concept's) erasure request and its whole trail.

    ``scope`` holds the subject/sample ids in clear only while the request is processed;
    on completion they are replaced by salted commitments (``scope_commitments``).
    """

    __tablename__ = "deletion_requests"
    # The database holds the status to the declared states too (migration 0005).
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in REQUEST_STATUSES) + ")", name="status"
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(30), default="received", index=True)
    scope: Mapped[dict[str, Any]] = mapped_column(JSONType)
    scope_kind: Mapped[str] = mapped_column(String(20))
    scope_commitments: Mapped[list[str]] = mapped_column(JSONType, default=list)
    legal_basis: Mapped[str] = mapped_column(String(20))
    requester_reference: Mapped[str] = mapped_column(String(200), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    extended: Mapped[bool] = mapped_column(default=False)
    extension_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    blast_radius: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    plan: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    certificate: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class DeletionItem(Base):
    """One affected model version: its unlearning, verification and fallback."""

    __tablename__ = "deletion_items"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("deletion_requests.id"), index=True)
    model_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"), index=True)
    state: Mapped[str] = mapped_column(String(20), default="planned")
    method: Mapped[str] = mapped_column(String(60))
    exact: Mapped[bool] = mapped_column(default=False)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    result_version_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    verdict: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # Approved but held until this time so other requests on the same version join its run.
    batch_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DeletionComment(Base):
    """A note on a request. May hold personal data: never copied into the audit log."""

    __tablename__ = "deletion_comments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("deletion_requests.id"), index=True)
    author: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeletionAttachment(Base):
    """A small file kept with the request (the compliance record; never purged)."""

    __tablename__ = "deletion_attachments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("deletion_requests.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    object_key: Mapped[str] = mapped_column(String(500))
    uploaded_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
