from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from kombu import Connection
from pydantic import BaseModel
from sqlalchemy import func, select, text

from core.audit import autosign
from models import Job

router = APIRouter(tags=["health"])


class Check(BaseModel):
    ok: bool
    detail: str = ""
    latency_ms: float | None = None


class HealthPublic(BaseModel):
    status: str
    database: Check
    queue: Check
    storage: Check
    outbox_backlog: int | None = None
    # The automatic audit checkpoint signer in this process: ok false when it last found
    # the log not verifying and refused to sign (detail names the first bad position).
    # Informational: it does not make the service unhealthy.
    audit_signer: Check | None = None


def _timed(fn: Any) -> Check:
    start = time.perf_counter()
    try:
        detail = fn() or ""
        return Check(
            ok=True, detail=detail, latency_ms=round((time.perf_counter() - start) * 1e3, 2)
        )
    except Exception as exc:
        return Check(ok=False, detail=f"{type(exc).__name__}: {exc}"[:300])


@router.get("/health", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
def health(request: Request, response: Response) -> HealthPublic:
    """Status of the database, the queue's broker and object storage; 503 if any is down."""
    state = request.app.state
    backlog: list[int] = []

    def db() -> str:
        with state.session_factory() as session:
            session.execute(text("SELECT 1"))
            backlog.append(
                session.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.state == "queued", Job.dispatched_at.is_(None))
                )
                or 0
            )
        return state.settings.database_url.split(":", 1)[0]

    def queue() -> str:
        with Connection(state.settings.broker_url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            return conn.transport_cls if isinstance(conn.transport_cls, str) else "connected"

    def storage() -> str:
        state.store.check()
        return state.settings.storage_url.split(":", 1)[0]

    checks = {"database": _timed(db), "queue": _timed(queue), "storage": _timed(storage)}
    healthy = all(c.ok for c in checks.values())
    if not healthy:
        response.status_code = 503
    signer = autosign.status()
    signer_detail = f"{signer.at or '-'}: {signer.detail}"
    return HealthPublic(
        status="ok" if healthy else "degraded",
        outbox_backlog=backlog[0] if backlog else None,
        audit_signer=Check(ok=signer.ok is not False, detail=signer_detail),
        **checks,
    )
