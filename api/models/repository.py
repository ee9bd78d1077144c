"""All model and model-version queries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Model, ModelVersion


def get(session: Session, model_id: str) -> Model | None:
    return session.get(Model, model_id)


def get_by_name(session: Session, name: str) -> Model | None:
    return session.scalar(select(Model).where(Model.name == name))


def page(session: Session, cursor: str | None, limit: int) -> Sequence[Model]:
    stmt = select(Model).order_by(Model.id.desc()).limit(limit)
    if cursor:
        stmt = stmt.where(Model.id < cursor)
    return session.scalars(stmt).all()


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Model)) or 0


def latest_version_number(session: Session, model_id: str) -> int | None:
    return session.scalar(
        select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model_id)
    )


def version(session: Session, version_id: str) -> ModelVersion | None:
    return session.get(ModelVersion, version_id)


def versions(
    session: Session, model_id: str, status: str | None, cursor: str | None, limit: int
) -> Sequence[ModelVersion]:
    stmt = (
        select(ModelVersion)
        .where(ModelVersion.model_id == model_id)
        .order_by(ModelVersion.version.desc())
        .limit(limit)
    )
    if status:
        stmt = stmt.where(ModelVersion.status == status)
    if cursor:
        stmt = stmt.where(ModelVersion.version < int(cursor))
    return session.scalars(stmt).all()


def children(session: Session, version_id: str) -> Sequence[ModelVersion]:
    return session.scalars(
        select(ModelVersion)
        .where(ModelVersion.parent_version_id == version_id)
        .order_by(ModelVersion.version)
    ).all()
