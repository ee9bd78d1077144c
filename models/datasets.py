from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, UTCDateTime, utcnow


class Dataset(Base):
    """A named collection of samples; its contents change only by new versions."""

    __tablename__ = "datasets"
    # The database holds the modality to the known ones too (migration 0006).
    __table_args__ = (CheckConstraint("modality IN ('images', 'text')", name="modality"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(200))
    # "images" (pixels in .npz shards) or "text" (records in .json.gz shards); a text
    # dataset has no labels and an empty image_shape.
    modality: Mapped[str] = mapped_column(String(10), default="images", server_default="images")
    label_names: Mapped[list[str]] = mapped_column(JSONType, default=list)
    image_shape: Mapped[list[int]] = mapped_column(JSONType)  # H, W, C
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)


class DatasetVersion(Base):
    """An immutable set of samples, identified by the hash of its sorted sample ids+bytes."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    num_samples: Mapped[int] = mapped_column(Integer)
    split_counts: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)


class Sample(Base):
    """One sample. Membership of version v: added_in_version <= v < removed_in_version.

    The bytes live in an immutable shard object; (shard_key, shard_index) finds them.
    """

    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("dataset_id", "sample_id"),
        Index("ix_samples_dataset_label", "dataset_id", "label"),
        Index("ix_samples_dataset_subject", "dataset_id", "subject_id"),
        # Deletion requests look subjects and samples up across every dataset.
        Index("ix_samples_subject", "subject_id"),
        Index("ix_samples_sample_id", "sample_id"),
        UniqueConstraint("dataset_id", "position"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    sample_id: Mapped[str] = mapped_column(String(200))
    subject_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    label: Mapped[int | None] = mapped_column(Integer, nullable=True)
    caption: Mapped[str | None] = mapped_column(Text, nullable=True)
    split: Mapped[str] = mapped_column(String(10), default="train")
    shard_key: Mapped[str] = mapped_column(String(500))
    shard_index: Mapped[int] = mapped_column(Integer)
    # Index of the sample within its dataset, fixed at import: lineage masks use it.
    position: Mapped[int] = mapped_column(Integer)
    added_in_version: Mapped[int] = mapped_column(Integer, default=1)
    removed_in_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
