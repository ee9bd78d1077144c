"""Queries of the deletion domain: reads only, shared by the flows, the service and the
API (multi-step work lives in ``flows``, single-entity changes in ``service``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.deletion.states import MOVING, OPEN
from models import Job, ModelVersion
from models.deletion import DeletionItem, DeletionRequest


def get(session: Session, request_id: str) -> DeletionRequest | None:
    return session.get(DeletionRequest, request_id)


def items(session: Session, request_id: str) -> list[DeletionItem]:
    """A request's items, oldest first."""
    return list(
        session.scalars(
            select(DeletionItem)
            .where(DeletionItem.request_id == request_id)
            .order_by(DeletionItem.id)
        )
    )


def items_with_jobs(
    session: Session, request_id: str
) -> list[tuple[DeletionItem, str | None, float | None]]:
    """A request's items with their current job's state and progress (None without one)."""
    rows = session.execute(
        select(DeletionItem, Job.state, Job.progress)
        .outerjoin(Job, Job.id == DeletionItem.job_id)
        .where(DeletionItem.request_id == request_id)
        .order_by(DeletionItem.id)
    ).all()
    return [(item, state, progress) for item, state, progress in rows]


def page(
    session: Session, *, status: str | None, cursor: str | None, limit: int
) -> tuple[list[DeletionRequest], str | None]:
    """Newest first, ``limit`` of them after ``cursor``, and the next page's cursor."""
    stmt = select(DeletionRequest).order_by(DeletionRequest.id.desc()).limit(limit + 1)
    if status:
        stmt = stmt.where(DeletionRequest.status == status)
    if cursor:
        stmt = stmt.where(DeletionRequest.id < cursor)
    rows = list(session.scalars(stmt).all())
    return rows[:limit], rows[limit - 1].id if len(rows) > limit else None


def busy_elsewhere(session: Session, version_id: str, request_ids: set[str]) -> bool:
    """Whether another open request has a run on this version that has not closed yet.

    Two runs from the same version would each keep what the other erased: each new
    version is derived from a parent that still held the other request's data. So runs
    on one version are serial; the later request continues from the earlier one's
    result (``close`` retargets it), or from the version itself if the earlier failed.
    """
    return (
        session.scalar(
            select(DeletionItem.id)
            .join(DeletionRequest, DeletionRequest.id == DeletionItem.request_id)
            .where(
                DeletionItem.model_version_id == version_id,
                DeletionItem.request_id.not_in(request_ids),
                DeletionItem.state.in_(("unlearning", "done")),
                DeletionItem.method != "retire",
                DeletionRequest.status.in_(MOVING),
            )
            .limit(1)
        )
        is not None
    )


def unread_siblings(session: Session, version_id: str) -> bool:
    """Whether an item on this version has a finished job nobody has read yet."""
    return (
        session.scalar(
            select(DeletionItem.id)
            .join(Job, Job.id == DeletionItem.job_id)
            .where(
                DeletionItem.model_version_id == version_id,
                DeletionItem.state == "unlearning",
                Job.state.in_(("succeeded", "failed", "cancelled")),
            )
            .limit(1)
        )
        is not None
    )


def in_progress_ids(session: Session) -> list[str]:
    """Requests whose jobs run: the sweeper advances these."""
    return list(
        session.scalars(
            select(DeletionRequest.id).where(
                DeletionRequest.status.in_(MOVING)
            )
        )
    )


def held_elsewhere(session: Session, request_id: str) -> set[str]:
    """Versions another request holds: one still open, one that failed (its versions
    stay blocked until a person decides), and their unverified candidates."""
    holding = (*OPEN, "failed")
    items = (
        select(DeletionItem.model_version_id, DeletionItem.job_id)
        .join(DeletionRequest, DeletionRequest.id == DeletionItem.request_id)
        .where(DeletionRequest.id != request_id, DeletionRequest.status.in_(holding))
    ).subquery()
    versions = set(session.scalars(select(items.c.model_version_id)))
    candidates = session.scalars(
        select(ModelVersion.id).where(
            ModelVersion.job_id.in_(select(items.c.job_id).where(items.c.job_id.is_not(None)))
        )
    )
    return versions | set(candidates)
