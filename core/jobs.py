"""Job state shared by the API and the workers: events, the outbox sweep, lost jobs.

Every state change goes through a conditional UPDATE (``WHERE state IN ...`` and, for a
runner, ``AND attempt = :mine``), so concurrent actors (API cancel, runner, sweeper,
a duplicate delivery) can never both win.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from core.db import session_factory
from core.queue import send_job
from core.settings import Settings, get_settings
from core.storage import ObjectStore
from models import Job, JobEvent
from models.base import new_id, utcnow

log = logging.getLogger(__name__)


def record_event(session: Session, job_id: str, type_: str, data: dict[str, Any]) -> None:
    session.add(JobEvent(job_id=job_id, type=type_, data=data))


def state_event(session: Session, job_id: str, state: str, **extra: Any) -> None:
    record_event(session, job_id, "state", {"state": state, **extra})


def new_job(session: Session, kind: str, created_by: str | None, **fields: Any) -> Job:
    """Insert a queued job and its first event; the caller commits, then dispatches."""
    job = Job(id=new_id("job"), kind=kind, state="queued", created_by=created_by, **fields)
    session.add(job)
    session.flush()
    state_event(session, job.id, "queued")
    return job


def queue_for(device: str) -> str:
    return "gpu" if device.startswith("cuda") else "cpu"


def dispatch_pending(session: Session, settings: Settings, limit: int = 200) -> int:
    """Send queued jobs the broker never took (broker was down, or the API died mid-way)."""
    cutoff = utcnow() - timedelta(seconds=settings.dispatch_retry_seconds)
    rows = session.execute(
        select(Job.id, Job.queue)
        .where(Job.state == "queued", Job.dispatched_at.is_(None), Job.created_at < cutoff)
        .order_by(Job.id)
        .limit(limit)
    ).all()
    sent = 0
    for job_id, queue in rows:
        if not send_job(session, job_id, queue, settings):
            break
        sent += 1
    return sent


def requeue_lost(session: Session, settings: Settings) -> int:
    """Jobs whose worker stopped heart-beating: requeue (fenced by attempt) or give up."""
    cutoff = utcnow() - timedelta(seconds=settings.lost_after_seconds)
    stale = session.execute(
        select(Job.id, Job.attempt, Job.state, Job.cancel_requested).where(
            Job.state.in_(("running", "cancelling")),
            or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff),
        )
    ).all()
    changed = 0
    for job_id, attempt, state, cancel_requested in stale:
        if state == "cancelling" or cancel_requested:
            values: dict[str, Any] = {"state": "cancelled", "finished_at": utcnow()}
            note = {"state": "cancelled", "reason": "worker lost while cancelling"}
        elif attempt >= settings.max_attempts:
            values = {
                "state": "failed",
                "finished_at": utcnow(),
                "error": f"worker lost {attempt} times (no heartbeat for "
                f"{settings.lost_after_seconds:.0f}s); giving up",
            }
            note = {"state": "failed", "error": values["error"]}
        else:
            # 'lost' is recorded as an event; the row goes straight back to the outbox.
            values = {"state": "queued", "dispatched_at": None, "worker": None}
            note = {"state": "lost", "attempt": attempt}
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.attempt == attempt, Job.state == state)
            .values(**values)
        )
        if result.rowcount:
            record_event(session, job_id, "state", note)
            if note["state"] == "lost":
                state_event(session, job_id, "queued", reason="requeued after worker loss")
            changed += 1
    session.commit()
    return changed


def sweep_once(settings: Settings | None = None, store: ObjectStore | None = None) -> None:
    settings = settings or get_settings()
    factory = session_factory(settings)
    session = factory()
    try:
        requeue_lost(session, settings)
        dispatch_pending(session, settings)
    finally:
        session.close()
    if store is not None:
        from core.deletion.service import advance_all

        advance_all(factory, store, settings)


class Sweeper:
    """A daemon thread that runs ``sweep_once`` periodically; safe to run in many processes."""

    def __init__(
        self,
        settings: Settings | None = None,
        interval: float | None = None,
        store: ObjectStore | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.store = store
        self.interval = interval or max(1.0, self.settings.dispatch_retry_seconds / 2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="expunge-sweeper", daemon=True)

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                sweep_once(self.settings, self.store)
            except Exception as exc:  # the database may be restarting; try again next tick
                log.warning("sweep failed: %s", exc)
