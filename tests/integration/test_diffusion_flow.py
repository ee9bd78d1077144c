"""A ddpm model end to end over REST with a real worker process: train, generate twice
with the same seed (same bytes), erase a class with ESD and read the judge's verdict."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from tests.support.rest import wait_job

pytestmark = pytest.mark.integration

TINY8 = {
    "family": "ddpm",
    "num_classes": 10,
    "sample_size": 8,
    "block_out_channels": [8, 16],
    "attention_levels": [False, False],
    "norm_num_groups": 4,
}


def _ddpm(api) -> dict:
    response = api.post(
        "/api/v1/models", json={"name": f"ddpm-{uuid.uuid4().hex[:8]}", "architecture": TINY8}
    )
    assert response.status_code == 201, response.text
    return response.json()


def _submit(api, body: dict) -> dict:
    response = api.post("/api/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _succeeded(api, worker, job: dict) -> dict:
    done = wait_job(api, job["id"], {"succeeded", "failed", "cancelled"})
    assert done["state"] == "succeeded", (done, worker.log()[-3000:])
    return done


def test_ddpm_train_generate_erase(api, worker, mnist_small) -> None:
    model = _ddpm(api)
    train = _succeeded(
        api,
        worker,
        _submit(
            api,
            {
                "kind": "train",
                "model_id": model["id"],
                "dataset_id": mnist_small["id"],
                "params": {"steps": 4, "batch_size": 8, "lr_warmup_steps": 1, "log_every_steps": 2},
            },
        ),
    )
    assert train["metrics"]["steps"] == 4.0
    series = api.get(f"/api/v1/jobs/{train['id']}/metrics").json()["series"]
    assert len(series["train_loss"]) == 2
    version_id = train["result_version_id"]
    lineage = api.get(f"/api/v1/model-versions/{version_id}/lineage").json()
    assert lineage["training_set"]["count"] == 600 and lineage["job"]["kind"] == "train"

    generate = {
        "kind": "generate",
        "model_version_id": version_id,
        "params": {"labels": [0, 1, 7, 7], "seed": 11, "num_inference_steps": 3},
        "grid_columns": 2,
    }
    first, second = (_succeeded(api, worker, _submit(api, generate)) for _ in range(2))
    for name in ("grid.png", "image-0000.png", "image-0003.png"):
        a = api.get(f"/api/v1/jobs/{first['id']}/artifacts/{name}")
        b = api.get(f"/api/v1/jobs/{second['id']}/artifacts/{name}")
        assert a.status_code == b.status_code == 200
        assert a.headers["content-type"] == "image/png" and a.content.startswith(b"\x89PNG")
        assert a.content == b.content
        assert hashlib.sha256(a.content).hexdigest() == a.headers["x-artifact-sha256"]
    manifest = api.get(f"/api/v1/jobs/{first['id']}/artifacts/manifest.json").json()
    assert [i["seed"] for i in manifest["images"]] == [11, 12, 13, 14]

    # The trained checkpoint is a valid upload for another ddpm model of the same shape.
    checkpoint = api.get(f"/api/v1/model-versions/{version_id}/checkpoint").content
    uploaded = api.post(
        f"/api/v1/models/{_ddpm(api)['id']}/versions",
        files={"checkpoint": ("ddpm.safetensors", checkpoint)},
    )
    assert uploaded.status_code == 201, uploaded.text

    erase = _succeeded(
        api,
        worker,
        _submit(
            api,
            {
                "kind": "unlearn",
                "model_version_id": version_id,
                "method": "esd",
                "forget": {"labels": [7]},
                "params": {"steps": 3, "batch_size": 4, "trajectories": 1, "ddim_steps": 2},
                "judge": {"samples_per_class": 2, "num_inference_steps": 2, "real_images": 20},
            },
        ),
    )
    child = api.get(f"/api/v1/model-versions/{erase['result_version_id']}").json()
    assert child["parent_version_id"] == version_id and child["version"] == 2
    names = {a["name"] for a in erase["artifacts"]}
    assert {"checkpoint", "delta", "config", "sample_ids"} <= names
    delta = api.get(f"/api/v1/jobs/{erase['id']}/artifacts/delta")
    assert delta.status_code == 200 and 0 < len(delta.content) < len(checkpoint)
    metrics = erase["metrics"]
    assert metrics["method"] == "esd" and metrics["delta"]["changed_tensors"] > 0
    assert metrics["judge"]["kind"] == "pretrained"
    for key in ("forget_rate", "retain_accuracy", "frechet_retain"):
        assert key in metrics["evaluation"] and key in metrics["original_evaluation"]
    assert "forget_rate" in api.get(f"/api/v1/jobs/{erase['id']}/metrics").json()["series"]
