"""All dataset and sample queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from core.lineage import in_version
from models import Dataset, DatasetVersion, Sample


def get(session: Session, dataset_id: str) -> Dataset | None:
    return session.get(Dataset, dataset_id)


def get_by_name(session: Session, name: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.name == name))


def page(session: Session, cursor: str | None, limit: int) -> Sequence[Dataset]:
    stmt = select(Dataset).order_by(Dataset.id.desc()).limit(limit)
    if cursor:
        stmt = stmt.where(Dataset.id < cursor)
    return session.scalars(stmt).all()


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Dataset)) or 0


def version(session: Session, dataset_id: str, number: int) -> DatasetVersion | None:
    return session.scalar(
        select(DatasetVersion).where(
            DatasetVersion.dataset_id == dataset_id, DatasetVersion.version == number
        )
    )


def versions(session: Session, dataset_id: str) -> Sequence[DatasetVersion]:
    return session.scalars(
        select(DatasetVersion)
        .where(DatasetVersion.dataset_id == dataset_id)
        .order_by(DatasetVersion.version.desc())
    ).all()


def insert_samples(session: Session, rows: list[dict[str, Any]], batch: int = 10_000) -> None:
    for start in range(0, len(rows), batch):
        session.execute(insert(Sample), rows[start : start + batch])


def subject_count(session: Session, dataset_id: str, version_number: int) -> int:
    return (
        session.scalar(
            select(func.count(func.distinct(Sample.subject_id))).where(
                Sample.dataset_id == dataset_id,
                Sample.subject_id.is_not(None),
                in_version(version_number),
            )
        )
        or 0
    )


def samples_page(
    session: Session,
    dataset_id: str,
    version_number: int,
    *,
    label: int | None,
    subject_id: str | None,
    split: str | None,
    after_pk: int | None,
    limit: int,
) -> Sequence[Sample]:
    stmt = (
        select(Sample)
        .where(Sample.dataset_id == dataset_id, in_version(version_number))
        .order_by(Sample.pk)
        .limit(limit)
    )
    if label is not None:
        stmt = stmt.where(Sample.label == label)
    if subject_id is not None:
        stmt = stmt.where(Sample.subject_id == subject_id)
    if split is not None:
        stmt = stmt.where(Sample.split == split)
    if after_pk is not None:
        stmt = stmt.where(Sample.pk > after_pk)
    return session.scalars(stmt).all()


def sample(session: Session, dataset_id: str, sample_id: str) -> Sample | None:
    return session.scalar(
        select(Sample).where(Sample.dataset_id == dataset_id, Sample.sample_id == sample_id)
    )
