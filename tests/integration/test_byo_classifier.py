"""Bring your own classifier on an RGB dataset, through REST on the production stack.

A CIFAR-10-style archive (train/<class>/*.png, test/<class>/*.png, 32x32 RGB) is
uploaded; a torchvision ResNet-50 and a timm model, built untrained by name at 32x32,
go through train -> unlearn (three methods) -> evaluate -> deletion request ->
certificate. Tiny on purpose: it proves the plumbing, not accuracy.
"""

from __future__ import annotations

import io
import tarfile
import uuid

import numpy as np
import pytest
from PIL import Image

from tests.support.rest import (
    approver_headers,
    certificate_verifies,
    finish_request,
    new_model,
    trained,
    wait_job,
)

pytestmark = pytest.mark.integration

CLASSES = ["airplane", "automobile", "bird", "cat", "deer"]
TRAIN_PER_CLASS, TEST_PER_CLASS = 8, 2


def cifar_style_archive() -> bytes:
    """A tar.gz laid out like the CIFAR-10 image-folder exports: colour per class + noise."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for split, count in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
            for c, name in enumerate(CLASSES):
                for i in range(count):
                    pixels = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
                    pixels[..., c % 3] += 150
                    pixels[: 8 * (c // 3 + 1)] //= 2
                    out = io.BytesIO()
                    Image.fromarray(pixels, mode="RGB").save(out, format="PNG")
                    info = tarfile.TarInfo(f"cifar5/{split}/{name}/{i:04d}.png")
                    info.size = len(out.getvalue())
                    archive.addfile(info, io.BytesIO(out.getvalue()))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def rgb_dataset(api, worker) -> dict:
    uploaded = api.post(
        "/api/v1/datasets/upload",
        files={"file": ("cifar5.tar.gz", cifar_style_archive(), "application/gzip")},
        data={"name": f"cifar5-{uuid.uuid4().hex[:6]}"},
    )
    assert uploaded.status_code == 201, uploaded.text
    return uploaded.json()


def test_cifar_style_archive_uploads_as_rgb(api, rgb_dataset) -> None:
    assert rgb_dataset["label_names"] == sorted(CLASSES)
    assert rgb_dataset["num_samples"] == len(CLASSES) * (TRAIN_PER_CLASS + TEST_PER_CLASS)
    sample = api.get(f"/api/v1/datasets/{rgb_dataset['id']}/samples").json()["data"][0]
    image = Image.open(io.BytesIO(api.get(sample["image_url"]).content))
    assert image.mode == "RGB" and image.size == (32, 32)


def test_unknown_library_model_is_422_naming_close_names(api) -> None:
    response = api.post(
        "/api/v1/models",
        json={
            "name": f"m-{uuid.uuid4().hex[:6]}",
            "architecture": {"name": "torchvision", "model": "resnet500", "num_classes": 5},
        },
    )
    assert response.status_code == 422, response.text
    assert "resnet50" in response.text


@pytest.mark.parametrize(
    "library_model", [("torchvision", "resnet50"), ("timm", "resnet18d")], ids=lambda m: m[1]
)
def test_library_model_train_unlearn_evaluate_delete_certify(
    api, anon, worker, rgb_dataset, library_model
) -> None:
    library, model_name = library_model
    arch = {
        "name": library,
        "model": model_name,
        "num_classes": len(CLASSES),
        "in_channels": 3,
        "input_size": [32, 32],
    }
    model = new_model(api, arch)
    params = {"epochs": 1, "batch_size": 8, "lr": 0.01}
    done = trained(api, model["id"], rgb_dataset["id"], params, worker)
    version_id = done["result_version_id"]
    version = api.get(f"/api/v1/model-versions/{version_id}").json()
    assert version["status"] == "active" and version["sha256"]

    # Three methods on the same version: class-wise, with per-layer access (SSD, SalUn).
    for method in ("finetune", "salun", "ssd"):
        job = api.post(
            "/api/v1/jobs",
            json={
                "kind": "unlearn",
                "model_version_id": version_id,
                "method": method,
                "forget": {"labels": [0]},
                "params": {} if method == "ssd" else {"epochs": 1},
            },
        )
        assert job.status_code == 201, job.text
        finished = wait_job(api, job.json()["id"], {"succeeded", "failed"})
        assert finished["state"] == "succeeded", (method, finished, worker.log()[-2000:])
        assert 0.0 <= finished["metrics"]["evaluation"]["UA"] <= 1.0
        result_version = finished["result_version_id"]

    evaluation = api.post(
        "/api/v1/jobs",
        json={"kind": "evaluate", "model_version_id": result_version, "forget": {"labels": [0]}},
    ).json()
    measured = wait_job(api, evaluation["id"], {"succeeded", "failed"})
    assert measured["state"] == "succeeded", measured
    assert 0.0 <= measured["metrics"]["evaluation"]["TA"] <= 1.0

    # A deletion request for two training images reaches every version trained on them.
    page = api.get(
        f"/api/v1/datasets/{rgb_dataset['id']}/samples", params={"split": "train", "limit": 5}
    ).json()["data"]
    sample_ids = [s["sample_id"] for s in page[:2]]
    filed = api.post(
        "/api/v1/deletion-requests",
        json={"scope": {"sample_ids": sample_ids}, "legal_basis": "gdpr_art17"},
    )
    assert filed.status_code == 201, filed.text
    request = filed.json()
    assert version_id in request["blast_radius"]["versions"], request["blast_radius"]
    approved = anon.post(
        f"/api/v1/deletion-requests/{request['id']}/approve", headers=approver_headers(api)
    )
    assert approved.status_code == 200, approved.text
    closed = finish_request(api, request["id"], timeout=600)
    assert closed["status"] == "completed", closed
    certificate = certificate_verifies(api, anon, request["id"])
    entries = {m["old_sha256"]: m for m in certificate["models"]}
    assert version["sha256"] in entries, certificate["models"]
    assert entries[version["sha256"]]["new_sha256"] != version["sha256"]
