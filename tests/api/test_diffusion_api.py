"""The ddpm family over REST: registration, methods by family, request validation (422s
that name the problem), checkpoint upload checked against the UNet, artifact names."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from tests.support.db import fake_version

TINY8 = {
    "family": "ddpm",
    "num_classes": 10,
    "sample_size": 8,
    "block_out_channels": [8, 16],
    "attention_levels": [False, False],
    "norm_num_groups": 4,
}


def _model(api, arch: dict, **extra) -> dict:
    response = api.post(
        "/api/v1/models",
        json={"name": f"dd-{uuid.uuid4().hex[:8]}", "architecture": arch, **extra},
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def ddpm(api) -> dict:
    return _model(api, TINY8)


def test_ddpm_model_is_registered_by_its_family_key(api, ddpm) -> None:
    assert ddpm["family"] == "ddpm" and ddpm["architecture"]["sample_size"] == 8
    no_key = _model(api, {k: v for k, v in TINY8.items() if k != "family"}, family="ddpm")
    assert no_key["family"] == "ddpm" and no_key["architecture"]["family"] == "ddpm"
    bad = api.post(
        "/api/v1/models", json={"name": "dd-bad", "architecture": {**TINY8, "num_classes": 1}}
    )
    assert bad.status_code == 422 and "architecture.num_classes" in bad.json()["message"]
    clash = api.post(
        "/api/v1/models", json={"name": "dd-clash", "family": "classifier", "architecture": TINY8}
    )
    assert clash.status_code == 422 and "ddpm architecture" in clash.json()["message"]


def test_methods_list_both_families(api) -> None:
    methods = api.get("/api/v1/methods").json()
    ddpm = {m["name"]: m for m in methods if m["family"] == "ddpm"}
    assert {"esd", "salun", "gradient_ascent", "concept_ablation", "retrain"} <= set(ddpm)
    assert ddpm["esd"]["scopes"] == ["labels"] and "ICCV 2023" in ddpm["esd"]["paper"]
    assert ddpm["retrain"]["exact"] and "subject_ids" in ddpm["retrain"]["scopes"]
    assert "negative_guidance" in ddpm["esd"]["params_schema"]["properties"]
    both = [m for m in methods if m["name"] == "retrain"]
    assert {m["family"] for m in both} == {"classifier", "ddpm", "text2image", "causal_lm"}
    only = api.get("/api/v1/methods", params={"family": "ddpm"}).json()
    assert {m["name"] for m in only} == set(ddpm) and all(m["family"] == "ddpm" for m in only)


def test_train_params_are_checked_against_the_family(api, ddpm, mnist_small) -> None:
    def train(model_id: str, params: dict):
        return api.post(
            "/api/v1/jobs",
            json={
                "kind": "train",
                "model_id": model_id,
                "dataset_id": mnist_small["id"],
                "params": params,
            },
        )

    bad_steps = train(ddpm["id"], {"steps": 0})
    assert bad_steps.status_code == 422 and "params.steps" in bad_steps.json()["message"]
    classifier_keys = train(ddpm["id"], {"epochs": 2})
    assert classifier_keys.status_code == 422
    # Read with the family's declared schema: the same 422 as any body error, naming it.
    assert "params.epochs" in classifier_keys.json()["message"]
    assert "DiffusionTrainParams" in classifier_keys.json()["message"]
    too_big = train(ddpm["id"], {"steps": 2, "batch_size": 4096, "lr_warmup_steps": 0})
    assert too_big.status_code == 422 and "batch_size" in too_big.json()["detail"]
    classifier = _model(api, {"name": "mlp", "num_classes": 10, "width": 8})
    wrong = train(classifier["id"], {"steps": 3, "lr_warmup_steps": 0})
    assert wrong.status_code == 422 and "params.steps" in wrong.json()["message"]


def test_generate_is_refused_for_classifiers_and_unknown_classes(api, ddpm, prod_settings) -> None:
    classifier = _model(api, {"name": "mlp", "num_classes": 10, "width": 8})
    on_classifier = api.post(
        "/api/v1/jobs",
        json={
            "kind": "generate",
            "model_version_id": fake_version(prod_settings, classifier["id"]),
            "params": {"labels": [0]},
        },
    )
    assert on_classifier.status_code == 422
    assert "generation needs a ddpm model" in on_classifier.json()["detail"]
    version_id = fake_version(prod_settings, ddpm["id"])
    unknown = api.post(
        "/api/v1/jobs",
        json={"kind": "generate", "model_version_id": version_id, "params": {"labels": [3, 10]}},
    )
    assert unknown.status_code == 422 and "unknown class label(s) [10]" in unknown.json()["detail"]
    seeds = api.post(
        "/api/v1/jobs",
        json={
            "kind": "generate",
            "model_version_id": version_id,
            "params": {"labels": [1, 2], "seeds": [1]},
        },
    )
    assert seeds.status_code == 422 and "seeds has 1 entries" in seeds.json()["message"]


def test_unlearn_and_evaluate_route_by_family(api, ddpm, prod_settings) -> None:
    version_id = fake_version(prod_settings, ddpm["id"])

    def unlearn(method: str, forget: dict, **extra):
        return api.post(
            "/api/v1/jobs",
            json={
                "kind": "unlearn",
                "model_version_id": version_id,
                "method": method,
                "forget": forget,
                **extra,
            },
        )

    classifier_only = unlearn("finetune", {"labels": [0]})
    assert classifier_only.status_code == 422
    assert "for ddpm models" in classifier_only.json()["detail"]
    assert "esd" in classifier_only.json()["detail"]
    samples = unlearn("esd", {"sample_ids": ["x"]})
    assert samples.status_code == 422 and "cannot forget sample_ids" in samples.json()["detail"]
    unknown = unlearn("esd", {"labels": [12]})
    assert unknown.status_code == 422 and "unknown class label(s) [12]" in unknown.json()["detail"]
    bad_params = unlearn("esd", {"labels": [0]}, params={"negative_guidance": -1})
    assert bad_params.status_code == 422 and "negative_guidance" in bad_params.json()["detail"]
    uploaded = unlearn("esd", {"labels": [0]})  # no lineage: uploaded, not trained
    assert uploaded.status_code == 422 and "lineage" in uploaded.json()["detail"]
    evaluate = api.post(
        "/api/v1/jobs",
        json={"kind": "evaluate", "model_version_id": version_id, "dataset_id": "ds_x"},
    )
    assert evaluate.status_code == 422 and "forget.labels" in evaluate.json()["detail"]


def test_artifact_names_are_checked(api, ddpm, mnist_small) -> None:
    job = api.post(
        "/api/v1/jobs",
        json={
            "kind": "train",
            "model_id": ddpm["id"],
            "dataset_id": mnist_small["id"],
            "params": {"steps": 1, "batch_size": 4, "lr_warmup_steps": 0},
        },
    ).json()
    api.post(f"/api/v1/jobs/{job['id']}/cancel")
    missing = api.get(f"/api/v1/jobs/{job['id']}/artifacts/grid.png")
    assert missing.status_code == 404 and "no artifact 'grid.png'" in missing.json()["detail"]
    hidden = api.get(f"/api/v1/jobs/{job['id']}/artifacts/..config")
    assert hidden.status_code == 422
    nojob = api.get("/api/v1/jobs/job_nope/artifacts/grid.png")
    assert nojob.status_code == 404


def test_ddpm_checkpoint_upload_is_checked_against_the_unet(api, tmp_path) -> None:
    """A file that is not this UNet's state dict is refused naming what does not fit.
    (A fitting upload is accepted in tests/integration/test_diffusion_flow.py.)"""
    from safetensors.numpy import save_file

    ddpm = _model(api, TINY8)
    path = tmp_path / "other.safetensors"
    save_file({"conv_in.weight": np.zeros((8, 1, 3, 3), dtype=np.float32)}, str(path))
    with path.open("rb") as fh:
        bad = api.post(
            f"/api/v1/models/{ddpm['id']}/versions", files={"checkpoint": ("u.safetensors", fh)}
        )
    assert bad.status_code == 422
    assert "missing key(s)" in bad.json()["detail"] and "ddpm" in bad.json()["detail"]
    assert api.get(f"/api/v1/models/{ddpm['id']}/versions").json()["data"] == []
