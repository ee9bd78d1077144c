"""A job's life in the audit log: every state it passes through is one event, written in
the transaction of the change (by the API, the runner and the sweeper alike), and its
progress, logs and heartbeats are not events at all."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update

from api.jobs.schemas import TrainJobCreate
from api.jobs.service import create_train_job
from core.db import session_factory
from core.jobs import requeue_lost
from models import AuditEvent, Job, JobEvent
from tests.fixtures.fault_stack import FaultStack
from workers.runner import Runner


def _submit(stack: FaultStack) -> str:
    """A committed job on a stack no worker serves: nothing can race this test for it."""
    api, mnist_small, settings = stack.api, stack.dataset, stack.settings
    model = api.post(
        "/api/v1/models",
        json={
            "name": f"audit-{uuid.uuid4().hex[:8]}",
            "architecture": {"name": "mlp", "num_classes": 10, "width": 16},
        },
    ).json()
    body = TrainJobCreate(
        kind="train",
        model_id=model["id"],
        dataset_id=mnist_small["id"],
        params={"max_train_samples": 64},
    )
    with session_factory(settings)() as session:
        job = create_train_job(session, body, created_by="key_test")
        session.commit()
        return job.id


def _trail(settings, entity_id: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with session_factory(settings)() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.entity_id == entity_id).order_by(AuditEvent.seq)
            )
        )


def test_every_job_state_is_an_audit_event_and_progress_is_not(idle_stack) -> None:
    settings = idle_stack.settings
    job_id = _submit(idle_stack)
    runner = Runner(settings, idle_stack.store)
    assert runner.claim(job_id) == 1
    factory = session_factory(settings)
    with factory() as session:  # the worker went silent: the sweeper requeues the job
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=None))
        session.commit()
        assert requeue_lost(session, settings) >= 1
    assert runner.run(job_id) == "succeeded"

    trail = _trail(settings, job_id)
    assert [(e.action, e.actor) for e in trail] == [
        ("job.queued", "key_test"),
        ("job.running", "worker"),
        ("job.lost", "system"),
        ("job.queued", "system"),
        ("job.running", "worker"),
        ("job.succeeded", "worker"),
    ]
    assert [e.payload["attempt"] for e in trail] == [0, 1, 1, 1, 2, 2]
    with factory() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.result_version_id
        assert trail[-1].payload["result_version_id"] == job.result_version_id
        progress = session.scalar(
            select(func.count())
            .select_from(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.type.in_(("progress", "log", "metric")))
        )
    assert progress and progress > 0  # the job did report progress, none of it audited
    version = _trail(settings, job.result_version_id)
    assert [e.action for e in version] == ["model_version.created"]
    assert version[0].payload["job_id"] == job_id and version[0].payload["source"] == "train"
    # Published in the transaction that ended the job: right before its succeeded event.
    assert version[0].seq < trail[-1].seq


def test_a_cancel_is_recorded_with_who_asked(idle_stack) -> None:
    api, settings = idle_stack.api, idle_stack.settings
    job_id = _submit(idle_stack)
    response = api.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    me = api.get("/api/v1/keys/me").json()["id"]
    trail = _trail(settings, job_id)
    assert [(e.action, e.actor) for e in trail] == [
        ("job.queued", "key_test"),
        ("job.cancelled", me),
    ]
