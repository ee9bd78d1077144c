"""ddpm jobs run in-process by the runner against Postgres and the S3 server: training
(with lineage and resume), generation, erasure with the judge, retrain without a subject,
and judge evaluation. tiny8 models, a handful of steps, one thread."""

from __future__ import annotations

import io
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from sqlalchemy import select

from api.jobs.schemas import (
    EvaluateJobCreate,
    GenerateJobCreate,
    JudgeParams,
    TrainJobCreate,
    UnlearnJobCreate,
)
from api.jobs.service import (
    create_evaluate_job,
    create_generate_job,
    create_train_job,
    create_unlearn_job,
)
from contracts.ddpm import DiffusionArchitecture, DiffusionTrainParams
from contracts.judge import DEFAULT_JUDGE
from core.datasets.reader import ShardReader
from core.db import session_factory
from core.deletion.policy import Thresholds, verify
from core.deletion.scope import resolve
from core.lineage import decode_mask
from models import Dataset, JobEvent, ModelVersion
from tests.support.db import version_row
from tests.support.runner import JUDGE, TINY8, TRAIN, commit_job, run_job
from workers.engine.diffusion.checkpoint import load_ddpm, load_delta
from workers.engine.diffusion.models import train_ddpm
from workers.jobs.common import load_split
from workers.jobs.diffusion import load_judge


@pytest.fixture(scope="module")
def ddpm_model(api) -> dict:
    response = api.post(
        "/api/v1/models", json={"name": f"ddpm-{uuid.uuid4().hex[:8]}", "architecture": TINY8}
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def trained(api, app, prod_settings, ddpm_model, mnist_small) -> ModelVersion:
    body = TrainJobCreate(
        kind="train", model_id=ddpm_model["id"], dataset_id=mnist_small["id"], params=TRAIN
    )
    job = run_job(prod_settings, app, commit_job(prod_settings, create_train_job, body))
    return version_row(prod_settings, job.result_version_id)


def test_train_publishes_ema_weights_with_lineage(app, prod_settings, trained) -> None:
    assert trained.source == "train" and trained.status == "active"
    assert trained.config["format"] == "expunge.ddpm/1" and trained.config["weights"] == "ema"
    assert trained.metrics["steps"] == 4.0
    mask = decode_mask(trained.training_mask)
    assert mask.sum() == trained.training_set["count"] > 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        app.state.store.download_file(trained.checkpoint_key, path)
        arch, state_dict = load_ddpm(path)  # the stored file alone rebuilds the model
    assert arch.model_dump(mode="json") == TINY8 and "class_embedding.weight" in state_dict


def test_train_resumes_from_the_stored_state(
    app, prod_settings, ddpm_model, mnist_small, trained
) -> None:
    params = {**TRAIN, "checkpoint_every_steps": 2}
    body = TrainJobCreate(
        kind="train", model_id=ddpm_model["id"], dataset_id=mnist_small["id"], params=params
    )
    job_id = commit_job(prod_settings, create_train_job, body)
    store = app.state.store
    with session_factory(prod_settings)() as session:
        data = load_split(session, ShardReader(store), mnist_small["id"], 1, "train").arrays
    states: list[dict[str, Any]] = []

    class Capture:
        def __getattr__(self, name: str) -> Any:
            return lambda *a, **k: False

        def on_checkpoint(self, state: dict[str, Any]) -> None:
            states.append(state)

    arch = DiffusionArchitecture.model_validate(TINY8)
    full = train_ddpm(arch, DiffusionTrainParams(**params), data, callbacks=Capture())
    buffer = io.BytesIO()
    torch.save(states[0], buffer)  # as an interrupted attempt would have left it
    store.put_bytes(f"jobs/{job_id}/resume.pt", buffer.getvalue())
    job = run_job(prod_settings, app, job_id)
    version = version_row(prod_settings, job.result_version_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        store.download_file(version.checkpoint_key, path)
        _, resumed = load_ddpm(path)
    assert all(torch.equal(resumed[k], full.state_dict[k]) for k in full.state_dict)
    with session_factory(prod_settings)() as session:
        logs = session.scalars(
            select(JobEvent.data).where(JobEvent.job_id == job_id, JobEvent.type == "log")
        ).all()
    assert any("resuming from step 2" in e["message"] for e in logs)
    assert not store.exists(f"jobs/{job_id}/resume.pt")  # scratch removed on success


def test_generate_same_seed_same_bytes(app, prod_settings, trained) -> None:
    body = GenerateJobCreate(
        kind="generate",
        model_version_id=trained.id,
        params={"labels": [0, 1, 2], "seed": 5, "num_inference_steps": 3},
    )
    first, second = (
        run_job(prod_settings, app, commit_job(prod_settings, create_generate_job, body))
        for _ in range(2)
    )
    names = [a["name"] for a in first.artifacts]
    assert names == [
        "grid.png",
        "manifest.json",
        "image-0000.png",
        "image-0001.png",
        "image-0002.png",
    ]
    assert [a["seed"] for a in first.artifacts[2:]] == [5, 6, 7]
    assert [a["label"] for a in first.artifacts[2:]] == [0, 1, 2]
    store = app.state.store
    for a, b in zip(first.artifacts, second.artifacts, strict=True):
        if a["name"] != "manifest.json":
            assert store.get_bytes(a["key"]) == store.get_bytes(b["key"])
    assert store.get_bytes(first.artifacts[0]["key"]).startswith(b"\x89PNG")
    assert first.metrics["images"] == 3


def test_esd_erases_with_delta_and_judge(app, prod_settings, trained) -> None:
    body = UnlearnJobCreate(
        kind="unlearn",
        model_version_id=trained.id,
        method="esd",
        forget={"labels": [0]},
        params={"steps": 2, "batch_size": 4, "trajectories": 1, "ddim_steps": 2},
        judge=JUDGE,
    )
    job = run_job(prod_settings, app, commit_job(prod_settings, create_unlearn_job, body))
    child = version_row(prod_settings, job.result_version_id)
    assert child.parent_version_id == trained.id and child.source == "unlearn"
    delta = next(a for a in job.artifacts if a["name"] == "delta")
    assert delta["key"].endswith("/delta.safetensors") and delta["changed_tensors"] > 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.safetensors"
        app.state.store.download_file(delta["key"], path)
        tensors, meta = load_delta(path)
    assert meta["parent_sha256"] == trained.sha256 and len(tensors) == delta["changed_tensors"]
    metrics = job.metrics
    assert metrics["judge"]["kind"] == "pretrained"
    for key in ("forget_rate", "retain_accuracy", "frechet_retain", "judge_accuracy_real"):
        assert metrics["evaluation"][key] >= 0 and key in metrics["original_evaluation"]
    # Two independent judges (the pretrained CNN; an MLP the worker trained on MNIST's
    # test digits, which that CNN never saw) score two sampler settings, both versions.
    assert [j["kind"] for j in metrics["judges"]] == ["pretrained", "trained"]
    assert [j["architecture"] for j in metrics["judges"]] == ["mnist_cnn", "mlp"]
    assert metrics["judges"][1]["data"] == "test split"
    for name in ("evaluation", "original_evaluation"):
        evaluation = metrics[name]
        assert [s["num_inference_steps"] for s in evaluation["samplers"]] == [2, 4]
        assert [s["seed"] for s in evaluation["samplers"]] == [0, 1]
        cells = evaluation["cells"]
        assert {(c["judge"], c["num_inference_steps"]) for c in cells} == {
            (j, steps) for j in evaluation["judges"] for steps in (2, 4)
        }
        for cell in cells:
            assert cell["forget_count"] == 2 and cell["retain_count"] == 18
            assert cell["forget_ci"][0] <= cell["forget_rate"] <= cell["forget_ci"][1]
            assert cell["retain_ci"][0] <= cell["retain_accuracy"] <= cell["retain_ci"][1]
        assert 0.0 <= evaluation["disagreement"]["between_judges"]["retain_accuracy"] <= 1.0
    verdict = verify(
        metrics["evaluation"],
        metrics["original_evaluation"],
        "labels",
        Thresholds(max_forget_rate=1.0, max_retain_drop=1.0),
        "ddpm",
    )
    assert len(verdict["checks"]) == 2 * 2 * 2 and all(c["passed"] for c in verdict["checks"])
    # Lineage: the erased class's samples are no longer in the version's training set.
    removed = decode_mask(trained.training_mask) & ~decode_mask(child.training_mask)
    assert removed.sum() == metrics["forget_count"] > 0
    assert child.training_set["count"] == trained.training_set["count"] - metrics["forget_count"]


def test_retrain_without_a_subject(app, prod_settings, trained, api, mnist_small) -> None:
    page = api.get(
        f"/api/v1/datasets/{mnist_small['id']}/samples", params={"split": "train", "limit": 50}
    ).json()
    subject = next(s["subject_id"] for s in page["data"] if s["subject_id"])
    body = UnlearnJobCreate(
        kind="unlearn",
        model_version_id=trained.id,
        method="retrain",
        forget={"subject_ids": [subject]},
        params={"train_steps": 2},
    )
    job = run_job(prod_settings, app, commit_job(prod_settings, create_unlearn_job, body))
    child = version_row(prod_settings, job.result_version_id)
    assert job.metrics["exact"] is True and job.metrics["forget_count"] >= 1
    assert job.metrics["judge"] is None and "samples" in job.metrics["judge_reason"]
    assert not any(a["name"] == "delta" for a in job.artifacts)  # a whole new model
    removed = decode_mask(trained.training_mask) & ~decode_mask(child.training_mask)
    assert removed.sum() == job.metrics["forget_count"]
    # Deletion-request scoping reads the same lineage: the subject hits the trained
    # version, not the retrained one.
    with session_factory(prod_settings)() as session:
        radius = resolve(session, "subject_ids", [subject], model_id=trained.model_id)
    assert trained.id in radius.direct and child.id not in radius.direct


def test_evaluate_judges_a_version(app, prod_settings, trained) -> None:
    body = EvaluateJobCreate(
        kind="evaluate", model_version_id=trained.id, forget={"labels": [3]}, judge=JUDGE
    )
    job = run_job(prod_settings, app, commit_job(prod_settings, create_evaluate_job, body))
    evaluation = job.metrics["evaluation"]
    assert evaluation["forget_labels"] == [3] and evaluation["samples_per_class"] == 2
    assert set(evaluation["per_class_accuracy"]) == {str(c) for c in range(10)}


def test_evaluate_with_chosen_sampler_settings(app, prod_settings, trained) -> None:
    samplers = [
        {"num_inference_steps": 2, "seed": 7},
        {"num_inference_steps": 3, "seed": 8, "scheduler": "ddpm"},
        {"num_inference_steps": 2, "seed": 9, "scheduler": "dpm"},
    ]
    body = EvaluateJobCreate(
        kind="evaluate",
        model_version_id=trained.id,
        forget={"labels": [3, 4]},
        judge={**JUDGE, "samples_per_class": 1, "samplers": samplers},
    )
    job = run_job(prod_settings, app, commit_job(prod_settings, create_evaluate_job, body))
    evaluation = job.metrics["evaluation"]
    assert [(s["scheduler"], s["seed"]) for s in evaluation["samplers"]] == [
        ("ddim", 7),
        ("ddpm", 8),
        ("dpm", 9),
    ]
    assert len(evaluation["cells"]) == 3 * len(job.metrics["judges"]) >= 6
    assert all(c["forget_count"] == 2 for c in evaluation["cells"])
    with pytest.raises(ValidationError, match="must all differ"):
        JudgeParams(samplers=[{"num_inference_steps": 5}, {"num_inference_steps": 5}])
    with pytest.raises(ValidationError):
        JudgeParams(samplers=[{"num_inference_steps": 5}])  # one setting is one opinion


def test_worker_judge_defaults_match_the_api() -> None:
    assert JudgeParams().model_dump(mode="json") == DEFAULT_JUDGE


def test_no_judge_for_other_datasets() -> None:
    arch = DiffusionArchitecture.model_validate(TINY8)
    judge, reason = load_judge(Dataset(name="faces", source="builtin:orl_faces"), arch)
    assert judge is None and "no pretrained judge" in reason
