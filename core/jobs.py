"""Job state shared by the API and the workers: events, the outbox sweep, lost jobs.

Every state change goes through a conditional UPDATE (``WHERE state IN ...`` and, for a
runner, ``AND attempt = :mine``), so concurrent actors (API cancel, runner, sweeper,
a duplicate delivery) can never both win.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from core.db import session_factory
from core.queue import RUN_JOB_TASK, get_celery, send_job
from core.settings import Settings, get_settings
from core.storage import ObjectStore, StorageError, without_retries
from models import Job, JobEvent
from models.base import new_id, utcnow
from models.jobs import TERMINAL_STATES

log = logging.getLogger(__name__)


def record_event(
    session: Session, job_id: str, type_: str, data: dict[str, Any], *, actor: str = "worker"
) -> None:
    """A job event; a ``state`` event is a state change, so it goes to the audit log too
    (in this transaction). Progress, logs and metrics do not: they are not state."""
    session.add(JobEvent(job_id=job_id, type=type_, data=data))
    if type_ == "state":
        _audit_state(session, job_id, str(data.get("state")), data, actor)
        if data.get("state") in TERMINAL_STATES:
            _announce_end(session, job_id, str(data["state"]))


def _audit_state(
    session: Session, job_id: str, state: str, data: dict[str, Any], actor: str
) -> None:
    """``job.<state>`` with ids only: a job's error text and spec may name data subjects."""
    from core.audit.log import record

    row = session.execute(
        select(Job.kind, Job.attempt, Job.model_id, Job.model_version_id).where(Job.id == job_id)
    ).one_or_none()
    payload: dict[str, Any] = {}
    if row is not None:
        payload = {"kind": row.kind, "attempt": row.attempt, "model_id": row.model_id}
        if row.model_version_id:
            payload["model_version_id"] = row.model_version_id
    if data.get("result_version_id"):
        payload["result_version_id"] = data["result_version_id"]
    record(session, actor, f"job.{state}", "job", job_id, payload)


def _announce_end(session: Session, job_id: str, state: str) -> None:
    """Queue ``job.<state>`` webhooks in the transaction that ends the job. Ids only:
    a job's spec and error text may name data subjects, so receivers fetch the rest."""
    from core import webhooks

    # Read through SQL, not the identity map: the state was often set by an UPDATE.
    row = session.execute(
        select(
            Job.kind, Job.model_id, Job.dataset_id, Job.model_version_id, Job.result_version_id
        ).where(Job.id == job_id)
    ).one_or_none()
    if row is None:
        return
    webhooks.enqueue(
        session,
        f"job.{state}",
        {
            "occurred_at": utcnow().isoformat(),
            "job": {
                "id": job_id,
                "kind": row.kind,
                "state": state,
                "model_id": row.model_id,
                "dataset_id": row.dataset_id,
                "model_version_id": row.model_version_id,
                "result_version_id": row.result_version_id,
            },
        },
    )


def state_event(
    session: Session, job_id: str, state: str, *, actor: str = "worker", **extra: Any
) -> None:
    record_event(session, job_id, "state", {"state": state, **extra}, actor=actor)


def new_job(session: Session, kind: str, created_by: str | None, **fields: Any) -> Job:
    """Insert a queued job and its first event; the caller commits, then dispatches."""
    job = Job(id=new_id("job"), kind=kind, state="queued", created_by=created_by, **fields)
    session.add(job)
    session.flush()
    state_event(session, job.id, "queued", actor=created_by or "system")
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


def redeliver_lost(session: Session, settings: Settings, limit: int = 200) -> int:
    """Send again queued jobs whose broker message is gone.

    Redis without persistence forgets every waiting message when it restarts, and those
    jobs would stay ``queued`` forever (their rows say they were sent). Only on Redis, and
    only while the job's queue list is empty — then no message for it waits there. A
    message a busy worker has prefetched is not in the list either, so that job may be
    delivered twice; the runner's claim (attempt fencing) makes the second a no-op.
    """
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return 0  # the embedded SQL broker and AMQP keep their messages
    cutoff = utcnow() - timedelta(seconds=settings.redeliver_after_seconds)
    rows = session.execute(
        select(Job.id, Job.queue)
        .where(Job.state == "queued", Job.dispatched_at < cutoff)
        .order_by(Job.id)
        .limit(limit)
    ).all()
    if not rows:
        return 0
    import redis

    client = redis.Redis.from_url(settings.broker_url, socket_timeout=3, socket_connect_timeout=3)
    empty: dict[str, bool] = {}
    sent = 0
    try:
        for job_id, queue in rows:
            if queue not in empty:
                empty[queue] = client.llen(queue) == 0
            if not empty[queue]:
                continue
            get_celery(settings).send_task(RUN_JOB_TASK, args=[job_id], queue=queue)
            session.execute(update(Job).where(Job.id == job_id).values(dispatched_at=utcnow()))
            record_event(session, job_id, "log", {"message": "sent again: its message was lost"})
            session.commit()
            sent += 1
    except Exception as exc:  # broker down again: the next sweep retries
        log.warning("could not redeliver queued jobs: %s", exc)
    finally:
        client.close()
    if sent:
        log.warning("sent %d queued job(s) again whose broker messages were lost", sent)
    return sent


def job_prefixes(job_id: str, model_id: str | None) -> list[str]:
    """Every storage folder a job's attempts write: its scratch (resume checkpoints) and,
    for jobs that make a model version, the version's files before the row exists."""
    prefixes = [f"jobs/{job_id}/"]
    if model_id:
        prefixes.append(f"models/{model_id}/jobs/{job_id}/")
    return prefixes


def _remove_quietly(store: ObjectStore, prefixes: list[str]) -> int:
    removed = 0
    for prefix in prefixes:
        try:
            removed += store.delete_prefix(prefix)
        except StorageError as exc:  # storage down: the next orphan sweep tries again
            log.warning("could not remove %s: %s", prefix, exc)
    return removed


def requeue_lost(session: Session, settings: Settings, store: ObjectStore | None = None) -> int:
    """Jobs whose worker stopped heart-beating: requeue (fenced by attempt) or give up.

    A job given up on (failed or cancelled) cannot be resumed, so the objects its dead
    attempts wrote are removed once that state is committed (when ``store`` is given).
    """
    cutoff = utcnow() - timedelta(seconds=settings.lost_after_seconds)
    stale = session.execute(
        select(Job.id, Job.attempt, Job.state, Job.cancel_requested, Job.model_id).where(
            Job.state.in_(("running", "cancelling")),
            or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff),
        )
    ).all()
    changed = 0
    ended: list[tuple[str, str | None]] = []
    for job_id, attempt, state, cancel_requested, model_id in stale:
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
            record_event(session, job_id, "state", note, actor="system")
            if note["state"] == "lost":
                state_event(
                    session, job_id, "queued", actor="system", reason="requeued after worker loss"
                )
            else:
                ended.append((job_id, model_id))
            changed += 1
    session.commit()
    if store is not None:
        for job_id, model_id in ended:
            _remove_quietly(store, job_prefixes(job_id, model_id))
    return changed


def sweep_orphans(session: Session, store: ObjectStore, grace_seconds: float = 60.0) -> int:
    """Remove objects that no job can still use; returns how many objects went.

    A job that ended while storage was down (or whose worker died while cleaning up)
    leaves objects behind. Of a job that failed or was cancelled, everything under its
    folders goes (``jobs/<id>/`` and ``models/<m>/jobs/<id>/``). Of a job that
    succeeded, only what its row does not list as an artifact goes from ``jobs/<id>/``
    (a leftover resume checkpoint, not a generated image); its version's files stay.
    Jobs still queued, running or lost keep everything (a retry resumes from it); jobs
    that ended less than ``grace_seconds`` ago are left to their own runner.
    """
    found: dict[str, list[str]] = {}
    for key in store.list("jobs"):
        parts = key.split("/")
        if len(parts) >= 3:
            found.setdefault(parts[1], []).append(key)
    for key in store.list("models"):
        parts = key.split("/")
        if len(parts) >= 5 and parts[2] == "jobs":
            found.setdefault(parts[3], []).append(key)
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    ids = sorted(found)
    removed = 0
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(Job.id, Job.state, Job.finished_at, Job.artifacts).where(
                Job.id.in_(ids[start : start + 500])
            )
        ).all()
        for job_id, state, finished_at, artifacts in rows:
            if state not in TERMINAL_STATES or finished_at is None or finished_at > cutoff:
                continue
            doomed = found[job_id]
            if state == "succeeded":
                kept = {a.get("key") for a in artifacts or [] if isinstance(a, dict)}
                doomed = [k for k in doomed if k.startswith("jobs/") and k not in kept]
            for key in doomed:
                try:
                    store.delete(key)
                    removed += 1
                except StorageError as exc:  # storage down again: the next sweep retries
                    log.warning("could not remove %s: %s", key, exc)
    if removed:
        log.info("orphan sweep removed %d objects", removed)
    return removed


def sweep_once(settings: Settings | None = None, store: ObjectStore | None = None) -> None:
    settings = settings or get_settings()
    factory = session_factory(settings)
    session = factory()
    try:
        requeue_lost(session, settings, store)
        dispatch_pending(session, settings)
        redeliver_lost(session, settings)
    finally:
        session.close()
    if store is not None:
        from core.deletion.service import advance_all

        advance_all(factory, store, settings)
    # Last: a slow receiver delays only its own announcements, not the jobs.
    from core.webhooks import deliver_due

    deliver_due(factory, settings)


class Sweeper:
    """A daemon thread that runs ``sweep_once`` periodically; safe to run in many processes."""

    def __init__(
        self,
        settings: Settings | None = None,
        interval: float | None = None,
        store: ObjectStore | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        # No retry layer here: a storage outage must not hold up requeueing lost jobs;
        # whatever fails is simply tried again on a later tick.
        self.store = without_retries(store) if store is not None else None
        self.interval = interval or max(1.0, self.settings.dispatch_retry_seconds / 2)
        self._last_orphan_sweep = time.monotonic()
        self._last_checkpoint = time.monotonic()
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
            if (
                self.store is not None
                and time.monotonic() - self._last_orphan_sweep >= self.settings.orphan_sweep_seconds
            ):
                self._last_orphan_sweep = time.monotonic()
                try:
                    with session_factory(self.settings)() as session:
                        sweep_orphans(session, self.store)
                except Exception as exc:
                    log.warning("orphan sweep failed: %s", exc)
            every = self.settings.audit_checkpoint_seconds
            if every > 0 and time.monotonic() - self._last_checkpoint >= every:
                self._last_checkpoint = time.monotonic()
                from core.audit.autosign import sign_quietly

                sign_quietly(session_factory(self.settings), self.settings)
