"""Entry points that own a transaction: used by workers and the sweeper (the API's routes
own theirs). Commit first, then dispatch, as everywhere."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from core.deletion import flows
from core.deletion.redact import redact_due
from core.queue import send_job
from core.settings import Settings
from core.storage import ObjectStore
from models import Job
from models.deletion import DeletionItem


def advance_request(
    factory: sessionmaker[Session], store: ObjectStore, settings: Settings, request_id: str
) -> None:
    with factory() as session:
        request = flows.lock_request(session, request_id)
        if request is None:
            return
        jobs = flows.advance(session, store, settings, request)
        session.commit()
        for job in jobs:
            send_job(session, job.id, job.queue, settings)


def start_batches(factory: sessionmaker[Session], settings: Settings) -> None:
    """Start the runs of batches whose window has closed (see ``flows.start_batches``)."""
    with factory() as session:
        if session.get_bind().dialect.name == "sqlite":
            # Postgres skips rows another caller holds (FOR UPDATE SKIP LOCKED); SQLite
            # has no row locks, so take its write lock before reading the waiting items.
            session.execute(
                update(DeletionItem)
                .where(DeletionItem.state == "waiting")
                .values(state=DeletionItem.state)
                .execution_options(synchronize_session=False)
            )
        jobs = flows.start_batches(session)
        session.commit()
        for job in jobs:
            send_job(session, job.id, job.queue, settings)


def advance_for_job(
    factory: sessionmaker[Session], store: ObjectStore, settings: Settings, job_id: str
) -> None:
    """A workflow job finished: move on every request it served, then any due batch."""
    with factory() as session:
        job = session.get(Job, job_id)
        spec = (job.spec or {}) if job else {}
    request_ids = spec.get("deletion_request_ids") or [spec.get("deletion_request_id")]
    for request_id in [r for r in request_ids if r]:
        advance_request(factory, store, settings, request_id)
    if len(request_ids) > 1:
        start_batches(factory, settings)


def advance_all(factory: sessionmaker[Session], store: ObjectStore, settings: Settings) -> None:
    with factory() as session:
        ids = flows.open_in_progress(session)
    for request_id in ids:
        advance_request(factory, store, settings, request_id)
    start_batches(factory, settings)
    # Rejected and cancelled requests past their retention lose their ids in clear.
    redact_due(factory, settings)
