"""A worker killed with SIGKILL mid-job: the job is detected as lost, requeued, resumed
from its last checkpoint by another worker, and yields exactly one model version."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services import WorkerProcess
from tests.support import wait_for
from tests.support.rest import new_model, wait_job

pytestmark = pytest.mark.integration


def test_sigkilled_worker_job_is_requeued_and_resumed(
    api, worker, mnist_small, prod_settings, tmp_path: Path
) -> None:
    worker.stop()  # only the doomed worker may take the job
    doomed = WorkerProcess(prod_settings, tmp_path / "doomed.log").wait_ready()
    model = new_model(api)
    job = api.post(
        "/api/v1/jobs",
        json={
            "kind": "train",
            "model_id": model["id"],
            "dataset_id": mnist_small["id"],
            "params": {"epochs": 40, "batch_size": 16, "checkpoint_every_steps": 10},
        },
    ).json()
    wait_for(
        lambda: api.get(f"/api/v1/jobs/{job['id']}").json(),
        120,
        "the job to run past 10%",
        until=lambda current: current["state"] == "running" and current["progress"] > 0.1,
    )
    doomed.kill()  # SIGKILL: no chance to clean up or report

    rescuer = WorkerProcess(prod_settings, tmp_path / "rescuer.log").wait_ready()
    try:
        done = wait_job(api, job["id"], {"succeeded", "failed"}, timeout=300)
    finally:
        rescuer.stop()
    assert done["state"] == "succeeded", (done, rescuer.log()[-2000:])
    assert done["attempt"] == 2
    versions = api.get(f"/api/v1/models/{model['id']}/versions").json()["data"]
    assert [v["job_id"] for v in versions] == [job["id"]]
    events = api.get(f"/api/v1/jobs/{job['id']}/logs", params={"limit": 1000}).json()["data"]
    states = [e["data"]["state"] for e in events if e["type"] == "state"]
    assert "lost" in states and states[-1] == "succeeded"
    assert any("resuming from step" in e["data"].get("message", "") for e in events)
    # Nothing left behind under the job's scratch prefix.
    assert list(api.app.state.store.list(f"jobs/{job['id']}/")) == []
