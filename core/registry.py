"""Model-version bookkeeping shared by uploads (API) and training results (workers)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.audit.trail import version_created
from models import ModelVersion
from models.base import new_id


def version_prefix(model_id: str, version_id: str) -> str:
    return f"models/{model_id}/versions/{version_id}"


def add_model_version(session: Session, model_id: str, **fields: Any) -> ModelVersion:
    """Insert a version numbered max+1; a concurrent insert of the same number retries."""
    for _ in range(5):
        number = (
            session.scalar(
                select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model_id)
            )
            or 0
        ) + 1
        fields.setdefault("id", new_id("mv"))
        row = ModelVersion(model_id=model_id, version=number, **fields)
        savepoint = session.begin_nested()
        try:
            session.add(row)
            session.flush()
        except IntegrityError:
            savepoint.rollback()
            if fields.get("job_id") and session.scalar(
                select(ModelVersion.id).where(ModelVersion.job_id == fields["job_id"])
            ):
                raise
            continue
        savepoint.commit()
        version_created(session, row)
        return row
    raise RuntimeError(f"could not allocate a version number for model {model_id}")
