"""Training and evaluation driven through REST, run by a real Celery worker process,
on PostgreSQL + Redis + an S3 server."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from tests.support import wait_for
from tests.support.rest import MNIST_CNN, digit_recognizer_weights, new_model, wait_job

pytestmark = pytest.mark.integration


def test_train_job_end_to_end(api, worker, mnist_small, prod_settings) -> None:
    model = new_model(api)
    job = api.post(
        "/api/v1/jobs",
        json={
            "kind": "train",
            "model_id": model["id"],
            "dataset_id": mnist_small["id"],
            "params": {
                "epochs": 4,
                "batch_size": 32,
                "lr": 0.05,
                "max_train_samples": 300,
                "seed": 3,
            },
        },
    ).json()
    done = wait_job(api, job["id"], {"succeeded", "failed", "cancelled"})
    assert done["state"] == "succeeded", (done, worker.log()[-3000:])
    assert done["progress"] == 1.0 and done["wall_seconds"] > 0 and done["peak_memory_mb"] > 50
    assert done["metrics"]["test_accuracy"] > 0.5, str(done)  # 10 classes: chance is 0.1

    version = api.get(f"/api/v1/model-versions/{done['result_version_id']}").json()
    assert version["job_id"] == job["id"] and version["source"] == "train"
    blob = api.get(f"/api/v1/model-versions/{version['id']}/checkpoint").content
    assert hashlib.sha256(blob).hexdigest() == version["sha256"]

    lineage = api.get(f"/api/v1/model-versions/{version['id']}/lineage").json()
    assert lineage["job"]["id"] == job["id"]
    training_set = lineage["training_set"]
    assert training_set["dataset_id"] == mnist_small["id"] and training_set["count"] == 300
    ids = api.get(training_set["sample_ids_url"]).text.split()
    assert len(ids) == 300 and ids == sorted(ids)
    assert (
        hashlib.sha256(("\n".join(ids) + "\n").encode()).hexdigest()
        == training_set["sample_ids_sha256"]
    )

    events = api.get(f"/api/v1/jobs/{job['id']}/logs").json()["data"]
    states = [e["data"]["state"] for e in events if e["type"] == "state"]
    assert states[0] == "queued" and "running" in states and states[-1] == "succeeded"
    metrics = api.get(f"/api/v1/jobs/{job['id']}/metrics").json()
    assert "test_accuracy" in metrics["series"]

    # Fine-tune from that version: the child records its parent.
    child_job = api.post(
        "/api/v1/jobs",
        json={
            "kind": "train",
            "model_id": model["id"],
            "dataset_id": mnist_small["id"],
            "parent_version_id": version["id"],
            "params": {"max_train_samples": 100},
        },
    ).json()
    child = wait_job(api, child_job["id"], {"succeeded", "failed"})
    assert child["state"] == "succeeded", child
    child_lineage = api.get(f"/api/v1/model-versions/{child['result_version_id']}/lineage").json()
    assert child_lineage["ancestors"][0]["id"] == version["id"]
    assert child_lineage["version"]["version"] == 2


def test_running_job_cancels_and_leaves_no_version(api, worker, mnist_small, app) -> None:
    model = new_model(api)
    job = api.post(
        "/api/v1/jobs",
        json={
            "kind": "train",
            "model_id": model["id"],
            "dataset_id": mnist_small["id"],
            "params": {"epochs": 200, "batch_size": 8},
        },
    ).json()
    wait_for(  # in the training loop, so the cancel has to stop the loop itself
        lambda: api.get(f"/api/v1/jobs/{job['id']}").json(),
        240,
        "the job to report training progress",
        until=lambda current: current["state"] == "running" and current["progress"] > 0,
    )
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel").json()["state"] in (
        "cancelling",
        "cancelled",
    )
    done = wait_job(api, job["id"], {"cancelled", "failed", "succeeded"}, timeout=60)
    assert done["state"] == "cancelled" and done["result_version_id"] is None
    assert api.get(f"/api/v1/models/{model['id']}/versions").json()["data"] == []
    store = app.state.store
    assert list(store.list(f"models/{model['id']}/")) == []
    assert list(store.list(f"jobs/{job['id']}/")) == []


def test_crashing_job_fails_with_reason_and_worker_survives(api, worker, app) -> None:
    ds = api.post(
        "/api/v1/datasets",
        json={"name": f"digits-{uuid.uuid4().hex[:6]}", "source": {"name": "digits"}},
    ).json()
    store = app.state.store
    for key in list(store.list(f"datasets/{ds['id']}/")):
        store.delete(key)  # the bytes vanish behind the database's back
    model = new_model(api, {"name": "mlp", "num_classes": 10, "input_size": [8, 8], "width": 16})
    job = api.post(
        "/api/v1/jobs", json={"kind": "train", "model_id": model["id"], "dataset_id": ds["id"]}
    ).json()
    done = wait_job(api, job["id"], {"succeeded", "failed"})
    assert done["state"] == "failed" and done["error"]
    assert api.get(f"/api/v1/models/{model['id']}/versions").json()["data"] == []
    assert worker.proc.poll() is None


def test_pretrained_checkpoint_accuracy_is_reproduced(api, worker) -> None:
    ds = api.post(
        "/api/v1/datasets",
        json={
            "name": f"mnist-eval-{uuid.uuid4().hex[:6]}",
            "source": {"name": "mnist", "limit": 12000},
        },
    ).json()
    model = new_model(api, MNIST_CNN)
    with digit_recognizer_weights().open("rb") as fh:
        version = api.post(
            f"/api/v1/models/{model['id']}/versions", files={"checkpoint": ("w.pth", fh)}
        ).json()
    job = api.post(
        "/api/v1/jobs",
        json={
            "kind": "evaluate",
            "model_version_id": version["id"],
            "dataset_id": ds["id"],
            "splits": ["test"],
        },
    ).json()
    done = wait_job(api, job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done
    assert done["metrics"]["test_accuracy"] >= 0.97, done["metrics"]
