"""Training and evaluation driven through REST, run by a real Celery worker process,
on PostgreSQL + Redis + an S3 server."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest

from tests.api.test_models import MNIST_CNN, digit_recognizer_weights

pytestmark = pytest.mark.integration


def wait(api, job_id: str, states: set[str], timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} stuck in {job['state']}: {job}")


def trained(api, model_id: str, dataset_id: str, params: dict, worker=None) -> dict:  # type: ignore[no-untyped-def]
    """Submit a train job and wait for it; the finished job (it must have succeeded)."""
    body = {"kind": "train", "model_id": model_id, "dataset_id": dataset_id, "params": params}
    submitted = api.post("/api/v1/jobs", json=body)
    assert submitted.status_code == 201, submitted.text
    done = wait(api, submitted.json()["id"], {"succeeded", "failed", "cancelled"})
    assert done["state"] == "succeeded", (done, worker.log()[-2000:] if worker else "")
    return done


def new_model(api, arch: dict | None = None) -> dict:
    arch = arch or {"name": "small_cnn", "num_classes": 10, "width": 8}
    response = api.post(
        "/api/v1/models", json={"name": f"m-{uuid.uuid4().hex[:8]}", "architecture": arch}
    )
    assert response.status_code == 201, response.text
    return response.json()


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
    done = wait(api, job["id"], {"succeeded", "failed", "cancelled"})
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
    child = wait(api, child_job["id"], {"succeeded", "failed"})
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
    wait(api, job["id"], {"running"})
    time.sleep(1.0)
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel").json()["state"] in (
        "cancelling",
        "cancelled",
    )
    done = wait(api, job["id"], {"cancelled", "failed", "succeeded"}, timeout=60)
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
    done = wait(api, job["id"], {"succeeded", "failed"})
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
    done = wait(api, job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done
    assert done["metrics"]["test_accuracy"] >= 0.97, done["metrics"]
