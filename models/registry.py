from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, UTCDateTime, utcnow

VERSION_STATUSES = ("active", "tainted", "retired", "purged")


class Model(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    family: Mapped[str] = mapped_column(String(20))
    architecture: Mapped[dict[str, Any]] = mapped_column(JSONType)
    description: Mapped[str] = mapped_column(Text, default="")
    # core.deletion.policy.DeletionPolicy as JSON; empty means the defaults.
    deletion_policy: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)


class ModelVersion(Base):
    """One checkpoint with its lineage.

    ``training_set`` pins the exact samples: a dataset version, a split and the sample ids
    left out; the full sorted id list is also stored as an object (``sample_ids_key``).
    ``job_id`` is unique so a job can never produce two versions, even if run twice.
    """

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="active", index=True)
    source: Mapped[str] = mapped_column(String(20))  # upload | train | unlearn
    checkpoint_key: Mapped[str] = mapped_column(String(500))
    config_key: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    parent_version_id: Mapped[str | None] = mapped_column(
        ForeignKey("model_versions.id"), nullable=True, index=True
    )
    # Not a foreign key: jobs already reference versions, and the cycle buys nothing.
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True, unique=True)
    dataset_version_id: Mapped[str | None] = mapped_column(
        ForeignKey("dataset_versions.id"), nullable=True, index=True
    )
    training_set: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    sample_ids_key: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # zlib(packbits(bool per sample position)): which samples of the dataset it was
    # trained on, exact and small (7.5 kB for 60k samples); scoping reads it directly.
    training_mask: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
