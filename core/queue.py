"""The Celery app and the job outbox.

The jobs table is the truth; the broker only carries job ids. A job row is committed
first (``dispatched_at`` NULL), then sent; if the broker is down the row stays
undispatched and the sweeper sends it when the broker is back.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from celery import Celery
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.settings import Settings, get_settings
from models import Job
from models.base import utcnow

log = logging.getLogger(__name__)

RUN_JOB_TASK = "expunge.run_job"


def make_celery(broker_url: str) -> Celery:
    app = Celery("expunge", broker=broker_url)
    transport_options: dict[str, object]
    if broker_url.startswith("sqla+"):
        # Kombu hands these straight to create_engine, so only engine arguments fit here;
        # the embedded broker therefore polls at kombu's default of once a second.
        transport_options = {"connect_args": {"timeout": 30}}
    else:
        transport_options = {"visibility_timeout": 4 * 3600}
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue="cpu",
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        # Publishing must fail fast when the broker is down: the outbox retries later.
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0.1, "interval_step": 0.2},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_heartbeat=0,
    )
    return app


@lru_cache
def _celery_for(broker_url: str) -> Celery:
    return make_celery(broker_url)


def get_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    return _celery_for(settings.broker_url)


def send_job(session: Session, job_id: str, queue: str, settings: Settings | None = None) -> bool:
    """Send one committed job to the broker and mark it dispatched. False if the broker is down."""
    try:
        get_celery(settings).send_task(RUN_JOB_TASK, args=[job_id], queue=queue)
    except Exception as exc:  # any broker failure: the sweeper retries from the outbox
        log.warning("broker unavailable, job %s stays in the outbox: %s", job_id, exc)
        return False
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.dispatched_at.is_(None))
        .values(dispatched_at=utcnow())
    )
    session.commit()
    return True
