"""Audit event queries for the API (the log itself lives in ``core.audit.log``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import AuditEvent


def page(
    session: Session,
    *,
    action: str | None,
    entity_type: str | None,
    entity_id: str | None,
    cursor: int | None,
    descending: bool,
    limit: int,
) -> Sequence[AuditEvent]:
    order = AuditEvent.seq.desc() if descending else AuditEvent.seq.asc()
    stmt = select(AuditEvent).order_by(order).limit(limit)
    for column, value in (
        (AuditEvent.action, action),
        (AuditEvent.entity_type, entity_type),
        (AuditEvent.entity_id, entity_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if cursor is not None:
        stmt = stmt.where(AuditEvent.seq < cursor if descending else AuditEvent.seq > cursor)
    return session.scalars(stmt).all()
