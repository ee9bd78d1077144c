"""The prompt families over REST and through the runner (Postgres + S3, in-process
runner): text2image train → generate (same seed, same bytes) → uce with a concept scope;
a Stable Diffusion archive uploaded, checked, generated from and erased; and the 422s
that keep labels and prompts to their families."""

from __future__ import annotations

import shutil
import uuid
from typing import Any

import pytest
from safetensors.torch import load_file

from api.jobs.schemas import (
    EvaluateJobCreate,
    GenerateJobCreate,
    TrainJobCreate,
    UnlearnJobCreate,
)
from api.jobs.service import (
    create_evaluate_job,
    create_generate_job,
    create_train_job,
    create_unlearn_job,
)
from contracts.text2image import TextToImageArchitecture
from core.lineage import decode_mask
from tests.support.db import fake_version, version_row
from tests.support.runner import JUDGE, commit_job, run_job
from tests.support.runner import TINY8 as DDPM_TINY8
from tests.workers.engine.diffusion.tiny_sd import build_tiny_sd
from workers.engine.diffusion.prompted import pack_folder

T2I = TextToImageArchitecture.preset(
    "tiny8", 10, caption_templates=["a photo of the digit {name}", "a handwritten {name}"]
).model_dump(mode="json")
TRAIN = {"steps": 4, "batch_size": 8, "lr_warmup_steps": 1, "log_every_steps": 2}
GEN = {
    "prompts": ["a photo of the digit 3", "a handwritten 7"],
    "seed": 4,
    "num_inference_steps": 3,
}


def _model(api: Any, arch: dict[str, Any]) -> dict[str, Any]:
    response = api.post(
        "/api/v1/models", json={"name": f"p-{uuid.uuid4().hex[:8]}", "architecture": arch}
    )
    assert response.status_code == 201, response.text
    return response.json()


def _post_job(api: Any, body: dict[str, Any]) -> Any:
    return api.post("/api/v1/jobs", json=body)


@pytest.fixture(scope="module")
def t2i_version(api, app, prod_settings, mnist_small) -> Any:
    model = _model(api, T2I)
    assert model["family"] == "text2image"
    body = TrainJobCreate(
        kind="train", model_id=model["id"], dataset_id=mnist_small["id"], params=TRAIN
    )
    job = run_job(prod_settings, app, commit_job(prod_settings, create_train_job, body))
    return version_row(prod_settings, job.result_version_id)


def _same_bytes(app: Any, first: Any, second: Any) -> None:
    store = app.state.store
    for a, b in zip(first.artifacts, second.artifacts, strict=True):
        if a["name"] != "manifest.json":
            assert store.get_bytes(a["key"]) == store.get_bytes(b["key"]), a["name"]


def test_text2image_trains_generates_and_erases(app, prod_settings, t2i_version, tmp_path) -> None:
    assert t2i_version.config["format"] == "expunge.text2image/1"
    assert t2i_version.config["class_names"][3] == "3"
    assert t2i_version.config["captions_example"] == ["a photo of the digit 0", "a handwritten 0"]
    body = GenerateJobCreate(kind="generate", model_version_id=t2i_version.id, params=GEN)
    first, second = (
        run_job(prod_settings, app, commit_job(prod_settings, create_generate_job, body))
        for _ in range(2)
    )
    assert [a.get("prompt") for a in first.artifacts[2:]] == GEN["prompts"]
    assert [a["seed"] for a in first.artifacts[2:]] == [4, 5]
    _same_bytes(app, first, second)

    unlearn = UnlearnJobCreate(
        kind="unlearn",
        model_version_id=t2i_version.id,
        method="uce",
        forget={"concept": {"prompts": ["a photo of the digit 3"], "anchor": "a photo"}},
        judge=JUDGE,
    )
    job = run_job(prod_settings, app, commit_job(prod_settings, create_unlearn_job, unlearn))
    child = version_row(prod_settings, job.result_version_id)
    assert child.parent_version_id == t2i_version.id
    assert child.config["unlearning"]["forget_kind"] == "concept"
    assert child.training_mask == t2i_version.training_mask  # no sample left the set
    assert job.metrics["preserved_prompts"] == 19  # the other class captions
    assert job.metrics["method_metrics"]["erase_residual"] < 0.5
    # Judged like ddpm: the erased caption is class 3, scored on both versions.
    assert job.metrics["judge"]["kind"] == "pretrained"
    for name in ("evaluation", "original_evaluation"):
        evaluation = job.metrics[name]
        assert evaluation["forget_labels"] == [3] and evaluation["samples_per_class"] == 2
        assert 0.0 <= evaluation["forget_rate"] <= 1.0
        assert set(evaluation["per_class_accuracy"]) == {str(c) for c in range(10)}
        assert "frechet_retain" in evaluation
    delta = next(a for a in job.artifacts if a["name"] == "delta")
    path = tmp_path / "delta.safetensors"
    path.write_bytes(app.state.store.get_bytes(delta["key"]))
    keys = sorted(load_file(str(path)))
    assert keys and all(k.endswith(("attn2.to_k.weight", "attn2.to_v.weight")) for k in keys)
    # ESD over the real cross-attention (ESD-x), through the same job path.
    esd = UnlearnJobCreate(
        kind="unlearn",
        model_version_id=t2i_version.id,
        method="esd",
        forget={"concept": {"prompts": ["a handwritten 3"]}},
        params={"train_method": "xattn", "steps": 3, "trajectories": 2, "ddim_steps": 3},
        evaluate=False,
    )
    esd_job = run_job(prod_settings, app, commit_job(prod_settings, create_unlearn_job, esd))
    assert "judge" not in esd_job.metrics  # evaluate=False
    changed = esd_job.metrics["delta"]["changed_tensors"]
    assert changed > 0 and esd_job.metrics["method_metrics"]["forget_epsilon_shift"] > 0
    # The erased version generates too.
    again = GenerateJobCreate(kind="generate", model_version_id=child.id, params=GEN)
    run_job(prod_settings, app, commit_job(prod_settings, create_generate_job, again))


def test_text2image_evaluate_judges_classes_and_prompts(app, prod_settings, t2i_version) -> None:
    def evaluate(forget: dict[str, Any], judge: dict[str, Any] = JUDGE) -> Any:
        body = EvaluateJobCreate(
            kind="evaluate", model_version_id=t2i_version.id, forget=forget, judge=judge
        )
        return run_job(prod_settings, app, commit_job(prod_settings, create_evaluate_job, body))

    job = evaluate({"labels": [1]})
    assert job.metrics["evaluation"]["forget_labels"] == [1]
    assert job.metrics["judge"]["kind"] == "pretrained"
    # Same seeds, same captions: a caption of class 1 gives the same scores as label 1.
    again = evaluate({"concept": {"prompts": ["a handwritten 1"]}})
    assert again.metrics["evaluation"]["forget_rate"] == job.metrics["evaluation"]["forget_rate"]
    assert (
        again.metrics["evaluation"]["per_class_accuracy"]
        == (job.metrics["evaluation"]["per_class_accuracy"])
    )
    # The robustness attack runs on the caption's token embeddings of a text2image model.
    attacked = evaluate({"labels": [1]}, {**JUDGE, "attack_steps": 2})
    attack = attacked.metrics["evaluation"]["attack"]
    assert attack["attack"] == "prompt_embedding" and attack["steps"] == 2
    assert 0.0 <= attack["attack_success_rate"] <= 1.0
    assert set(attack["per_class_success"]) == {"1"}
    # A prompt that is no class caption cannot be scored by a class judge.
    none = evaluate({"concept": {"prompts": ["a red balloon"]}})
    assert none.metrics["judge"] is None and "a red balloon" in none.metrics["judge_reason"]


def test_text2image_retrain_drops_samples_from_the_lineage(
    api, app, prod_settings, t2i_version, mnist_small
) -> None:
    body = UnlearnJobCreate(
        kind="unlearn",
        model_version_id=t2i_version.id,
        method="retrain",
        forget={"labels": [3]},
        params={"train_steps": 2},
        judge=JUDGE,
    )
    job = run_job(prod_settings, app, commit_job(prod_settings, create_unlearn_job, body))
    child = version_row(prod_settings, job.result_version_id)
    assert job.metrics["exact"] is True and child.parent_version_id == t2i_version.id
    assert child.config["unlearning"]["forget_labels"] == [3]
    assert child.config["format"] == "expunge.text2image/1"
    assert job.metrics["evaluation"]["forget_labels"] == [3]
    assert "original_evaluation" in job.metrics
    removed = decode_mask(t2i_version.training_mask) & ~decode_mask(child.training_mask)
    assert removed.sum() == job.metrics["forget_count"] > 0
    # A subject scope: exact, no class to judge.
    page = api.get(
        f"/api/v1/datasets/{mnist_small['id']}/samples", params={"split": "train", "limit": 50}
    ).json()
    subject = next(s["subject_id"] for s in page["data"] if s["subject_id"])
    by_subject = UnlearnJobCreate(
        kind="unlearn",
        model_version_id=t2i_version.id,
        method="retrain",
        forget={"subject_ids": [subject]},
        params={"train_steps": 2},
    )
    job = run_job(prod_settings, app, commit_job(prod_settings, create_unlearn_job, by_subject))
    assert job.metrics["judge"] is None and "samples" in job.metrics["judge_reason"]
    r = _post_job(
        api,
        {
            "kind": "unlearn",
            "model_version_id": t2i_version.id,
            "method": "retrain",
            "forget": {"concept": {"prompts": ["a handwritten 3"]}},
        },
    )
    assert r.status_code == 422 and "retrain forgets class labels" in r.json()["detail"]


def test_text2image_evaluate_refusals(api, t2i_version) -> None:
    base = {"kind": "evaluate", "model_version_id": t2i_version.id}
    r = _post_job(api, base)
    assert r.status_code == 422 and "forget.labels" in r.json()["detail"]
    r = _post_job(api, {**base, "forget": {"labels": [12]}})
    assert r.status_code == 422 and "unknown class label" in r.json()["detail"]
    r = _post_job(api, {**base, "forget": {"labels": list(range(10))}})
    assert r.status_code == 422 and "every class" in r.json()["detail"]


def test_labels_and_prompts_stay_with_their_families(api, t2i_version, prod_settings) -> None:
    ddpm = _model(api, DDPM_TINY8)
    ddpm_version = fake_version(prod_settings, ddpm["id"])
    r = _post_job(api, {"kind": "generate", "model_version_id": ddpm_version, "params": GEN})
    assert r.status_code == 422 and "takes class labels, not prompts" in r.json()["detail"]
    r = _post_job(
        api,
        {"kind": "generate", "model_version_id": t2i_version.id, "params": {"labels": [1]}},
    )
    assert r.status_code == 422 and "takes prompts, not class labels" in r.json()["detail"]
    concept = {"concept": {"prompts": ["a photo of the digit 3"]}}
    r = _post_job(
        api,
        {"kind": "unlearn", "model_version_id": ddpm_version, "method": "esd", "forget": concept},
    )
    assert r.status_code == 422 and "takes class labels, not prompts" in r.json()["detail"]
    r = _post_job(
        api,
        {
            "kind": "unlearn",
            "model_version_id": ddpm_version,
            "method": "uce",
            "forget": {"labels": [1]},
        },
    )
    assert r.status_code == 422 and "uce needs a prompt-conditioned model" in r.json()["detail"]
    r = _post_job(
        api,
        {
            "kind": "unlearn",
            "model_version_id": t2i_version.id,
            "method": "uce",
            "forget": {"labels": [1]},
        },
    )
    assert r.status_code == 422 and "takes prompts, not class labels" in r.json()["detail"]
    r = _post_job(
        api,
        {
            "kind": "unlearn",
            "model_version_id": t2i_version.id,
            "method": "salun",
            "forget": concept,
        },
    )
    assert r.status_code == 422 and "salun" in r.json()["detail"] and "esd" in r.json()["detail"]
    r = _post_job(
        api,
        {"kind": "generate", "model_version_id": t2i_version.id, "params": {**GEN, "prompts": []}},
    )
    assert r.status_code == 422
    r = _post_job(
        api,
        {
            "kind": "generate",
            "model_version_id": t2i_version.id,
            "params": {**GEN, "num_inference_steps": 5000},
        },
    )
    assert r.status_code == 422
    methods = api.get("/api/v1/methods", params={"family": "text2image"}).json()
    assert [m["name"] for m in methods] == ["concept_ablation", "esd", "retrain", "uce"]
    ablation = next(m for m in methods if m["name"] == "concept_ablation")
    assert "anchor_label" not in ablation["params_schema"]["properties"]  # the scope's anchor
    assert all(m["scopes"] == ["concept"] for m in methods if m["name"] != "retrain")
    retrain = next(m for m in methods if m["name"] == "retrain")
    assert retrain["scopes"] == ["labels", "sample_ids", "subject_ids"] and retrain["exact"]


@pytest.fixture(scope="module")
def sd_model(api, tmp_path_factory) -> dict[str, Any]:
    folder = build_tiny_sd(tmp_path_factory.mktemp("sdjob"))
    archive = folder.parent / "pipeline.tar"
    pack_folder(folder, archive)
    model = _model(api, {"family": "stable_diffusion"})
    with archive.open("rb") as fh:
        r = api.post(f"/api/v1/models/{model['id']}/versions", files={"checkpoint": ("sd.tar", fh)})
    assert r.status_code == 201, r.text
    return {"model": model, "version": r.json(), "folder": folder}


def test_sd_upload_is_checked(api, sd_model, tmp_path) -> None:
    version = sd_model["version"]
    assert version["config"]["pipeline"]["cross_attention_dim"] == 32
    broken = tmp_path / "broken"
    shutil.copytree(sd_model["folder"], broken)
    shutil.rmtree(broken / "text_encoder")
    archive = tmp_path / "broken.tar"
    pack_folder(broken, archive)
    with archive.open("rb") as fh:
        r = api.post(
            f"/api/v1/models/{sd_model['model']['id']}/versions",
            files={"checkpoint": ("b.tar", fh)},
        )
    assert r.status_code == 422 and "missing component(s): text_encoder" in r.json()["detail"]


def test_sd_generates_and_uce_erases(api, app, prod_settings, sd_model) -> None:
    version_id = sd_model["version"]["id"]
    params = {
        "prompts": ["a cat", "a dog"],
        "negative_prompts": ["", "blurry"],
        "seed": 1,
        "num_inference_steps": 3,
        "guidance_scale": 5.0,
    }
    body = GenerateJobCreate(kind="generate", model_version_id=version_id, params=params)
    first, second = (
        run_job(prod_settings, app, commit_job(prod_settings, create_generate_job, body))
        for _ in range(2)
    )
    _same_bytes(app, first, second)
    unlearn = UnlearnJobCreate(
        kind="unlearn",
        model_version_id=version_id,
        method="uce",
        forget={"concept": {"prompts": ["a cat"], "anchor": "a animal", "preserve": ["a dog"]}},
    )
    job = run_job(prod_settings, app, commit_job(prod_settings, create_unlearn_job, unlearn))
    child = version_row(prod_settings, job.result_version_id)
    assert child.config["format"] == "expunge.sd_unet/1" and child.parent_version_id == version_id
    assert job.metrics["delta"]["changed_tensors"] == 8  # the tiny UNet's K/V projections
    erased = GenerateJobCreate(kind="generate", model_version_id=child.id, params=params)
    after = run_job(prod_settings, app, commit_job(prod_settings, create_generate_job, erased))
    store = app.state.store
    assert store.get_bytes(after.artifacts[2]["key"]) != store.get_bytes(first.artifacts[2]["key"])
