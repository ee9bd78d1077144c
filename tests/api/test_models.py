from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

from tests.support.rest import MNIST_CNN, digit_recognizer_weights


def _model(api, name: str, arch: dict) -> dict:
    response = api.post("/api/v1/models", json={"name": name, "architecture": arch})
    assert response.status_code == 201, response.text
    return response.json()


def test_model_validation_names_the_field(api) -> None:
    response = api.post(
        "/api/v1/models",
        json={"name": "bad", "architecture": {"name": "small_cnn", "num_classes": 1}},
    )
    assert response.status_code == 422
    assert "architecture.num_classes" in response.json()["message"]
    unknown = api.post(
        "/api/v1/models", json={"name": "bad2", "architecture": {"name": "vgg", "num_classes": 3}}
    )
    assert unknown.status_code == 422 and "architecture.name" in unknown.json()["message"]


def test_upload_external_checkpoint_and_download(api, tmp_path) -> None:
    model = _model(api, "digit-recognizer-upload", MNIST_CNN)
    weights = digit_recognizer_weights()
    with weights.open("rb") as fh:
        response = api.post(
            f"/api/v1/models/{model['id']}/versions",
            files={"checkpoint": ("handwriting_model.pth", fh)},
            data={"metrics": '{"reported": "digit-recognizer-py"}'},
        )
    assert response.status_code == 201, response.text
    version = response.json()
    assert (
        version["version"] == 1 and version["source"] == "upload" and version["status"] == "active"
    )
    download = api.get(f"/api/v1/model-versions/{version['id']}/checkpoint")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == version["sha256"]
    assert download.headers["x-checkpoint-sha256"] == version["sha256"]
    lineage = api.get(f"/api/v1/model-versions/{version['id']}/lineage").json()
    assert lineage["job"] is None and lineage["training_set"] is None and lineage["ancestors"] == []
    listed = api.get(f"/api/v1/models/{model['id']}/versions").json()
    assert [v["id"] for v in listed["data"]] == [version["id"]]


def test_checkpoint_that_does_not_fit_is_422(api) -> None:
    model = _model(api, "small-for-mismatch", {"name": "small_cnn", "num_classes": 10})
    with digit_recognizer_weights().open("rb") as fh:
        response = api.post(
            f"/api/v1/models/{model['id']}/versions", files={"checkpoint": ("w.pth", fh)}
        )
    assert response.status_code == 422
    assert "missing" in response.json()["detail"] or "unexpected" in response.json()["detail"]
    assert api.get(f"/api/v1/models/{model['id']}/versions").json()["data"] == []


def test_not_a_checkpoint_is_422(api) -> None:
    model = _model(api, "garbage-target", MNIST_CNN)
    response = api.post(
        f"/api/v1/models/{model['id']}/versions",
        files={"checkpoint": ("w.safetensors", os.urandom(4096))},
    )
    assert response.status_code == 422


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_run(api, tmp_path) -> None:
    model = _model(api, "pickle-target", MNIST_CNN)
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"conv_layers.0.weight": _Exploit(marker)})
    response = api.post(
        f"/api/v1/models/{model['id']}/versions", files={"checkpoint": ("evil.pt", payload)}
    )
    assert response.status_code == 422
    assert not marker.exists()


def test_unknown_ids_are_404(api) -> None:
    assert api.get("/api/v1/models/mdl_nope").status_code == 404
    assert api.get("/api/v1/model-versions/mv_nope").status_code == 404
    assert api.get("/api/v1/model-versions/mv_nope/lineage").status_code == 404
    assert api.get("/api/v1/model-versions/mv_nope/checkpoint").status_code == 404
