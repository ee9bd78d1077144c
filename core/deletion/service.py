"""Entry points that own a transaction: used by workers and the sweeper (the API's routes
own theirs). Commit first, then dispatch, as everywhere."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from core.deletion import flows
from core.queue import send_job
from core.settings import Settings
from core.storage import ObjectStore
from models.deletion import DeletionRequest


def advance_request(
    factory: sessionmaker[Session], store: ObjectStore, settings: Settings, request_id: str
) -> None:
    with factory() as session:
        request = session.get(DeletionRequest, request_id, with_for_update=True)
        if request is None:
            return
        jobs = flows.advance(session, store, settings, request)
        session.commit()
        for job in jobs:
            send_job(session, job.id, job.queue, settings)


def advance_all(factory: sessionmaker[Session], store: ObjectStore, settings: Settings) -> None:
    with factory() as session:
        ids = flows.open_in_progress(session)
    for request_id in ids:
        advance_request(factory, store, settings, request_id)
