"""The job lifecycle around the engine, testable without Celery.

claim (queued|lost → running, attempt+1) → handler → one fenced final transaction.
A duplicate or stale delivery fails the claim and does nothing.
"""

from __future__ import annotations

import logging
import socket
import traceback
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

# Loaded here, with the runner, in one thread: core.audit's modules import one another, and
# a job's first handler import (through core.registry) racing the sweeper thread's first
# pass (through core.deletion) could otherwise see one of them half-initialised.
import core.audit  # noqa: F401
from core.db import session_factory
from core.deletion.service import advance_for_job
from core.jobs import job_prefixes, record_event
from core.settings import Settings, get_settings
from core.storage import (
    ObjectStore,
    RetryPolicy,
    StorageError,
    StorageUnavailable,
    open_store,
    with_retries,
    without_retries,
)
from models import Job, Model
from models.base import utcnow
from workers.context import (
    JobCancelled,
    JobContext,
    JobTimeLimit,
    StaleAttempt,
    is_out_of_memory,
)
from workers.families import Handler, UnsupportedJob, handler_for

log = logging.getLogger("expunge.worker")


class Runner:
    def __init__(self, settings: Settings | None = None, store: ObjectStore | None = None) -> None:
        self.settings = settings or get_settings()
        self.factory: sessionmaker[Session] = session_factory(self.settings)
        # Every storage call a job makes rides out a short outage (bounded backoff).
        self.store = with_retries(
            store
            or open_store(
                self.settings.storage_url,
                self.settings.s3_access_key,
                self.settings.s3_secret_key,
                self.settings.s3_region,
            ),
            RetryPolicy(
                self.settings.storage_retry_attempts,
                self.settings.storage_retry_base_seconds,
                self.settings.storage_retry_max_seconds,
            ),
        )
        self.worker_name = f"{socket.gethostname()}:{__import__('os').getpid()}"

    def claim(self, job_id: str) -> int | None:
        """Take ownership if the job is waiting (or its previous owner went silent)."""
        stale_cutoff = utcnow() - timedelta(seconds=self.settings.lost_after_seconds)
        with self.factory() as session:
            current = session.execute(
                select(Job.attempt, Job.state).where(Job.id == job_id)
            ).first()
            if current is None:
                log.warning("job %s does not exist; dropping the message", job_id)
                return None
            attempt, _ = current
            result = session.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    Job.attempt == attempt,
                    or_(
                        Job.state.in_(("queued", "lost")),
                        and_(Job.state == "running", Job.heartbeat_at < stale_cutoff),
                    ),
                )
                .values(
                    state="running",
                    attempt=attempt + 1,
                    worker=self.worker_name,
                    started_at=utcnow(),
                    heartbeat_at=utcnow(),
                    dispatched_at=utcnow(),
                    error=None,
                )
            )
            if not result.rowcount:
                session.rollback()
                return None
            record_event(
                session,
                job_id,
                "state",
                {"state": "running", "attempt": attempt + 1, "worker": self.worker_name},
            )
            session.commit()
            return attempt + 1

    def run(self, job_id: str) -> str | None:
        """Run one job to a terminal state; returns that state, or None if not ours."""
        state = self._run(job_id)
        if state is not None:
            self._continue_workflow(job_id)
        return state

    def _continue_workflow(self, job_id: str) -> None:
        """A deletion request's job finished: move its requests on at once (a batched run
        serves several; the sweeper would too, later)."""
        with self.factory() as session:
            job = session.get(Job, job_id)
            request_id = (job.spec or {}).get("deletion_request_id") if job else None
        if not request_id:
            return
        try:
            advance_for_job(self.factory, self.store, self.settings, job_id)
        except Exception:  # the sweeper retries; the job itself already finished
            log.exception("could not advance deletion request %s", request_id)

    def _run(self, job_id: str) -> str | None:
        # Import the job's handler (torch: seconds on a cold worker) before claiming: the
        # heartbeat starts with the job, and a claim that sat silent through the import
        # could be taken for a lost worker.
        handler, unsupported = self._handler(job_id)
        attempt = self.claim(job_id)
        if attempt is None:
            log.info("job %s is owned or finished elsewhere; nothing to do", job_id)
            return None
        with self.factory() as session:
            job = session.get(Job, job_id)
            assert job is not None
            session.expunge(job)
        with JobContext(job_id, attempt, self.settings, self.factory, self.store) as ctx:
            try:
                if handler is None:
                    raise unsupported or UnsupportedJob(f"job {job_id} has no handler")
                handler(ctx, job)
                return "succeeded"
            except StaleAttempt:
                log.warning("job %s attempt %s lost ownership; stopping quietly", job_id, attempt)
                return None
            except JobCancelled:
                return self._finish(ctx, "cancelled", None)
            except JobTimeLimit as exc:
                return self._finish(ctx, "failed", str(exc))
            except StorageUnavailable as exc:
                log.error("job %s failed: object storage unavailable: %s", job_id, exc)
                return self._finish(ctx, "failed", f"object storage unavailable: {exc}")
            except Exception as exc:
                if is_out_of_memory(exc):
                    # The allocation failed, so the memory it wanted was never taken:
                    # this process is fine to run the next job.
                    limit = self.settings.job_memory_limit_mb
                    cap = f" (job memory limit {limit} MiB)" if limit > 0 else ""
                    message = f"out of memory{cap}: {_describe(exc)}"
                    log.error("job %s failed: %s", job_id, message)
                    return self._finish(ctx, "failed", message)
                message = _describe(exc)
                log.error("job %s failed: %s\n%s", job_id, message, traceback.format_exc())
                return self._finish(ctx, "failed", message)

    def _handler(self, job_id: str) -> tuple[Handler | None, UnsupportedJob | None]:
        """The handler of the job's (kind, family) from the family runtimes' table, or why
        there is none (the claimed job then fails with that reason)."""
        with self.factory() as session:
            row = session.execute(
                select(Job.kind, Model.family)
                .outerjoin(Model, Model.id == Job.model_id)
                .where(Job.id == job_id)
            ).first()
        if row is None:
            return None, None  # the claim drops it
        kind, family = row
        try:
            return handler_for(kind, family or "classifier"), None
        except UnsupportedJob as exc:
            return None, exc

    def _finish(self, ctx: JobContext, state: str, error: str | None) -> str | None:
        try:
            with self.factory() as session:
                ctx._fenced(
                    session,
                    state=state,
                    error=error,
                    finished_at=utcnow(),
                    wall_seconds=ctx.wall_seconds,
                    peak_memory_mb=round(ctx.peak_rss_mb, 1),
                )
                data: dict[str, Any] = {"state": state}
                if error:
                    data["error"] = error
                record_event(session, ctx.job_id, "state", data)
                session.commit()
        except StaleAttempt:
            return None  # the new owner's objects are under the same keys: leave them
        # Only after the fenced write: a failed or cancelled job leaves no partial objects,
        # neither this attempt's nor those of an earlier attempt that was killed. One try
        # each, no backoff: if storage is down, the sweeper's orphan pass removes them.
        with self.factory() as session:
            model_id = session.scalar(select(Job.model_id).where(Job.id == ctx.job_id))
        store = without_retries(ctx.store)
        for prefix in dict.fromkeys((*job_prefixes(ctx.job_id, model_id), *ctx.scratch_prefixes)):
            try:
                store.delete_prefix(prefix)
            except StorageError as exc:
                log.warning("could not clean %s (the orphan sweep will): %s", prefix, exc)
        return state


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, ValueError) else text
