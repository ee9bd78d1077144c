"""The runner's lifecycle guarantees, in-process against Postgres and the S3 server."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import func, select, update

from api.jobs.schemas import TrainJobCreate
from api.jobs.service import create_train_job
from core.db import session_factory
from core.jobs import requeue_lost
from models import Job, ModelVersion
from tests.fixtures.fault_stack import FaultStack
from workers.runner import Runner


def _submit(stack: FaultStack, **params) -> dict:
    """A committed job on a stack no worker serves: nothing can race these tests for it."""
    api, mnist_small, settings = stack.api, stack.dataset, stack.settings
    model = api.post(
        "/api/v1/models",
        json={
            "name": f"r-{uuid.uuid4().hex[:8]}",
            "architecture": {"name": "mlp", "num_classes": 10, "width": 16},
        },
    ).json()
    body = TrainJobCreate(
        kind="train",
        model_id=model["id"],
        dataset_id=mnist_small["id"],
        params={"max_train_samples": 64, **params},
    )
    with session_factory(settings)() as session:
        job = create_train_job(session, body, created_by="test")
        session.commit()
        return {"id": job.id}


def _versions_of(settings, job_id: str) -> int:
    with session_factory(settings)() as session:
        return session.scalar(
            select(func.count()).select_from(ModelVersion).where(ModelVersion.job_id == job_id)
        )


def test_second_delivery_does_nothing(idle_stack) -> None:
    settings = idle_stack.settings
    job = _submit(idle_stack)
    runner = Runner(settings, idle_stack.store)
    assert runner.run(job["id"]) == "succeeded"
    assert runner.run(job["id"]) is None  # duplicate delivery: already done
    assert _versions_of(settings, job["id"]) == 1


def test_concurrent_deliveries_claim_once(idle_stack) -> None:
    settings = idle_stack.settings
    job = _submit(idle_stack)
    results: list[str | None] = []
    runners = [Runner(settings, idle_stack.store) for _ in range(2)]
    threads = [
        threading.Thread(target=lambda r=r: results.append(r.run(job["id"]))) for r in runners
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=str) == sorted(["succeeded", None], key=str)
    assert _versions_of(settings, job["id"]) == 1


def test_stale_attempt_cannot_write(idle_stack) -> None:
    """A runner whose job was requeued (heartbeat stale) loses ownership; the next wins."""
    settings = idle_stack.settings
    job = _submit(idle_stack)
    runner = Runner(settings, idle_stack.store)
    attempt = runner.claim(job["id"])
    assert attempt == 1
    factory = session_factory(settings)
    with factory() as session:
        session.execute(update(Job).where(Job.id == job["id"]).values(heartbeat_at=None))
        session.commit()
        assert requeue_lost(session, settings) >= 1
        assert session.get(Job, job["id"]).state == "queued"
    assert runner.run(job["id"]) == "succeeded"  # attempt 2 claims and finishes
    with factory() as session:
        final = session.get(Job, job["id"])
        assert final.attempt == 2 and final.state == "succeeded"
    assert _versions_of(settings, job["id"]) == 1


def test_lost_too_often_fails_with_reason(idle_stack) -> None:
    settings = idle_stack.settings
    job = _submit(idle_stack)
    factory = session_factory(settings)
    with factory() as session:
        session.execute(
            update(Job)
            .where(Job.id == job["id"])
            .values(state="running", attempt=settings.max_attempts, heartbeat_at=None)
        )
        session.commit()
        requeue_lost(session, settings)
        final = session.get(Job, job["id"])
        assert final.state == "failed" and "worker lost" in final.error
