"""What services record about their entities: one helper per kind of change that needs
more than a single ``record`` call (see docs/audit.md for the list of actions)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit.log import record
from models import ModelVersion


def version_status(
    session: Session,
    actor: str,
    version_ids: Iterable[str],
    status: str,
    *,
    only_from: str | None = None,
    **payload: Any,
) -> list[str]:
    """Record ``model_version.<status>`` for each of ``version_ids`` that an UPDATE to
    ``status`` is about to change (call it just before that UPDATE); returns their ids.

    ``only_from``: the UPDATE changes only versions in that status.
    """
    ids = sorted(set(version_ids))
    if not ids:
        return []
    stmt = select(ModelVersion.id, ModelVersion.status, ModelVersion.model_id).where(
        ModelVersion.id.in_(ids), ModelVersion.status != status
    )
    if only_from is not None:
        stmt = stmt.where(ModelVersion.status == only_from)
    changed = []
    for version_id, old, model_id in session.execute(stmt.order_by(ModelVersion.id)).all():
        body = {"model_id": model_id, "from": old, **payload}
        record(session, actor, f"model_version.{status}", "model_version", version_id, body)
        changed.append(version_id)
    return changed


def version_created(session: Session, version: ModelVersion) -> None:
    """``model_version.created``: where it came from and the checkpoint's digest."""
    actor = "worker" if version.job_id else (version.created_by or "system")
    record(
        session,
        actor,
        "model_version.created",
        "model_version",
        version.id,
        {
            "model_id": version.model_id,
            "version": version.version,
            "status": version.status,
            "source": version.source,
            "sha256": version.sha256,
            "job_id": version.job_id,
            "parent_version_id": version.parent_version_id,
            "dataset_version_id": version.dataset_version_id,
        },
    )
