"""The runner's handle on one claimed job: fenced writes, events, heartbeats, cancellation.

Every write is conditioned on ``attempt == mine``: once the sweeper requeues a job (our
heartbeat went stale) or another delivery claims it, our writes match no row and we stop
with ``StaleAttempt`` instead of clobbering the new owner's state.
"""

from __future__ import annotations

import logging
import os
import resource
import threading
import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.jobs import record_event
from core.settings import Settings
from core.storage import ObjectStore
from models import Job
from models.base import utcnow

log = logging.getLogger("expunge.worker")


class StaleAttempt(Exception):
    """Another attempt owns the job now; this one must stop without writing anything."""


class JobCancelled(Exception):
    """The job was cancelled through the API."""


class JobTimeLimit(Exception):
    """The job ran past the configured time limit."""


def _address_space_bytes() -> int | None:
    try:
        with open(f"/proc/{os.getpid()}/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


class MemoryCap:
    """Caps how much address space one job may add to the worker (``RLIMIT_AS``).

    The worker runs jobs in its own process, one at a time, so the cap is the address
    space at the job's start plus the limit; the old limit comes back when the job ends.
    Past the cap an allocation fails (``MemoryError`` in Python and numpy, a
    "can't allocate memory" ``RuntimeError`` in torch) instead of the kernel's OOM
    killer ending the whole worker. Linux only; elsewhere it does nothing.
    """

    def __init__(self, limit_mb: int) -> None:
        self.limit_mb = limit_mb
        self._previous: tuple[int, int] | None = None

    def __enter__(self) -> MemoryCap:
        base = _address_space_bytes()
        if self.limit_mb <= 0 or base is None:
            return self
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = base + self.limit_mb * 2**20
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        if soft != resource.RLIM_INFINITY and soft <= cap:
            return self  # an operator's tighter limit already applies
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        self._previous = (soft, hard)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            resource.setrlimit(resource.RLIMIT_AS, self._previous)
            self._previous = None


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation failure, whichever library reported it."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower()
    )


def _rss_mb() -> float:
    try:
        with open(f"/proc/{os.getpid()}/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class JobContext:
    def __init__(
        self,
        job_id: str,
        attempt: int,
        settings: Settings,
        factory: sessionmaker[Session],
        store: ObjectStore,
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.settings = settings
        self.factory = factory
        self.store = store
        self.started = time.monotonic()
        self.peak_rss_mb = _rss_mb()
        self._cancelled = False
        self._stale = False
        self._last_progress = 0.0
        # Object prefixes this attempt writes; removed if the job does not succeed.
        self.scratch_prefixes: list[str] = []
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"heartbeat-{job_id}", daemon=True
        )
        self._memory_cap = MemoryCap(settings.job_memory_limit_mb)

    # -- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> JobContext:
        self._heartbeat.start()
        self._memory_cap.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._memory_cap.__exit__()
        self._stop.set()
        self._heartbeat.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_seconds):
            self.peak_rss_mb = max(self.peak_rss_mb, _rss_mb())
            try:
                with self.factory() as session:
                    result = session.execute(
                        update(Job)
                        .where(
                            Job.id == self.job_id,
                            Job.attempt == self.attempt,
                            Job.state.in_(("running", "cancelling")),
                        )
                        .values(heartbeat_at=utcnow())
                        .returning(Job.cancel_requested)
                    )
                    row = result.first()
                    session.commit()
                if row is None:
                    self._stale = True
                elif row[0]:
                    self._cancelled = True
            except Exception as exc:  # database blip: try again next beat
                log.warning("heartbeat failed for %s: %s", self.job_id, exc)

    # -- checks the engine calls every step ---------------------------------------------
    def check(self) -> None:
        self.peak_rss_mb = max(self.peak_rss_mb, _rss_mb()) if os.name == "posix" else 0
        if self._stale:
            raise StaleAttempt(f"job {self.job_id} attempt {self.attempt} no longer owns the job")
        if self._cancelled:
            raise JobCancelled("cancelled by request")
        if time.monotonic() - self.started > self.settings.job_time_limit_seconds:
            raise JobTimeLimit(
                f"job exceeded the time limit of {self.settings.job_time_limit_seconds}s"
            )

    def should_stop(self) -> bool:
        return (
            self._stale
            or self._cancelled
            or (time.monotonic() - self.started > self.settings.job_time_limit_seconds)
        )

    # -- writes ------------------------------------------------------------------------
    def _fenced(self, session: Session, **values: Any) -> None:
        result = session.execute(
            update(Job)
            .where(
                Job.id == self.job_id,
                Job.attempt == self.attempt,
                Job.state.in_(("running", "cancelling")),
            )
            .values(**values)
        )
        if not result.rowcount:
            self._stale = True
            raise StaleAttempt(f"job {self.job_id} attempt {self.attempt} no longer owns the job")

    def event(self, type_: str, data: dict[str, Any], **job_values: Any) -> None:
        with self.factory() as session:
            if job_values:
                self._fenced(session, **job_values)
            record_event(session, self.job_id, type_, data)
            session.commit()

    def log(self, message: str) -> None:
        log.info("[%s] %s", self.job_id, message)
        self.event("log", {"message": message})

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        self.event("metric", {"name": name, "value": float(value), "step": step})

    def progress(self, fraction: float, force: bool = False) -> None:
        """Throttled: at most ~4 writes a second, so progress never slows the loop."""
        now = time.monotonic()
        if not force and now - self._last_progress < 0.25 and fraction < 1.0:
            return
        self._last_progress = now
        fraction = round(min(max(fraction, 0.0), 1.0), 4)
        self.event("progress", {"progress": fraction}, progress=fraction)

    def cancel_requested(self) -> bool:
        with self.factory() as session:
            return bool(session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)))

    @property
    def wall_seconds(self) -> float:
        return time.monotonic() - self.started
