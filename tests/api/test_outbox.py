"""A job submitted while the broker is down is not lost: it is committed, then sent later."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.db import session_factory
from core.jobs import dispatch_pending
from models import Job
from tests.services import ADMIN_KEY
from tests.support import wait_for


def test_submission_survives_a_down_broker(prod_settings, api, mnist_small) -> None:
    model = api.post(
        "/api/v1/models",
        json={"name": "outbox-model", "architecture": {"name": "mlp", "num_classes": 10}},
    ).json()
    down = prod_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    app = create_app(down, run_sweeper=False)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        started = time.monotonic()
        response = client.post(
            "/api/v1/jobs",
            json={"kind": "train", "model_id": model["id"], "dataset_id": mnist_small["id"]},
        )
        assert response.status_code == 201, response.text
        assert time.monotonic() - started < 10  # fails fast, does not hang on the broker
        job_id = response.json()["id"]
        health = client.get("/api/v1/health").json()
        assert health["status"] == "degraded" and not health["queue"]["ok"]
        assert health["outbox_backlog"] >= 1

    factory = session_factory(prod_settings)
    with factory() as session:
        # Committed before the 201 (a session worker may already have taken it since).
        assert session.scalar(select(Job.state).where(Job.id == job_id)) is not None
    # The broker is back (the real one): the sweep sends what the outbox holds. A session
    # worker's own sweeper may get there first; either way the job leaves the outbox.
    def swept() -> object:
        with factory() as session:
            dispatch_pending(session, prod_settings)
            return session.scalar(select(Job.dispatched_at).where(Job.id == job_id))

    # It is due once older than dispatch_retry_seconds.
    assert wait_for(swept, 30, "the sweep to send the job") is not None
    api.post(f"/api/v1/jobs/{job_id}/cancel")
