"""All job and job-event queries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import Job, JobEvent


def get(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def page(
    session: Session,
    *,
    kind: str | None,
    state: str | None,
    model_id: str | None,
    dataset_id: str | None,
    cursor: str | None,
    limit: int,
) -> Sequence[Job]:
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    for column, value in (
        (Job.kind, kind),
        (Job.state, state),
        (Job.model_id, model_id),
        (Job.dataset_id, dataset_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if cursor:
        stmt = stmt.where(Job.id < cursor)
    return session.scalars(stmt).all()


def transition(
    session: Session, job_id: str, from_states: tuple[str, ...], **values: object
) -> bool:
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.state.in_(from_states)).values(**values)
    )
    return bool(result.rowcount)


def events_after(
    session: Session, job_id: str, after: int, types: tuple[str, ...] | None, limit: int
) -> Sequence[JobEvent]:
    stmt = (
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.id > after)
        .order_by(JobEvent.id)
        .limit(limit)
    )
    if types:
        stmt = stmt.where(JobEvent.type.in_(types))
    return session.scalars(stmt).all()
