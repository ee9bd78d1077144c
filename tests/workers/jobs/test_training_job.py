"""The train sequence every family shares (``workers.jobs.training_job``), run by the
runner on a classifier: a killed attempt's resume state continues to the same weights,
the version config carries the common entries, and an engine error becomes the job's
error in the engine's own words. (ddpm, text2image and causal_lm go through the same
sequence: tests/workers/test_diffusion_jobs.py, test_prompted_jobs.py, test_lm_jobs.py.)"""

from __future__ import annotations

import io
import tempfile
import uuid
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import select, update

from api.jobs.schemas import TrainJobCreate
from api.jobs.service import create_train_job
from contracts.classifier import ArchitectureConfig, TrainParams
from core.datasets.reader import ShardReader
from core.db import session_factory
from models import JobEvent, Model
from tests.support.db import job_row, version_row
from tests.support.runner import commit_job, run_job
from workers.engine.checkpoint import load_checkpoint
from workers.engine.training import Callbacks, train_classifier
from workers.jobs.common import load_split
from workers.runner import Runner

ARCH = {"name": "mlp", "num_classes": 10, "width": 16}
PARAMS = {"epochs": 2, "batch_size": 16, "max_train_samples": 64, "checkpoint_every_steps": 2}


def _model(api) -> str:
    response = api.post(
        "/api/v1/models", json={"name": f"tj-{uuid.uuid4().hex[:8]}", "architecture": ARCH}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _job(settings, model_id: str, dataset_id: str, params: dict[str, Any]) -> str:
    body = TrainJobCreate(kind="train", model_id=model_id, dataset_id=dataset_id, params=params)
    return commit_job(settings, create_train_job, body)


def _logs(settings, job_id: str) -> list[str]:
    with session_factory(settings)() as session:
        return [
            e["message"]
            for e in session.scalars(
                select(JobEvent.data).where(JobEvent.job_id == job_id, JobEvent.type == "log")
            )
        ]


def test_classifier_train_resumes_to_the_uninterrupted_weights(
    api, app, prod_settings, mnist_small
) -> None:
    torch.set_num_threads(1)
    job_id = _job(prod_settings, _model(api), mnist_small["id"], PARAMS)
    store = app.state.store
    with session_factory(prod_settings)() as session:
        reader = ShardReader(store)
        train = load_split(session, reader, mnist_small["id"], 1, "train").arrays
        test = load_split(session, reader, mnist_small["id"], 1, "test").arrays
    states: list[dict[str, Any]] = []

    class Capture(Callbacks):
        def on_checkpoint(self, state: dict[str, Any]) -> None:
            states.append(state)

    arch, params = ArchitectureConfig.model_validate(ARCH), TrainParams(**PARAMS)
    full = train_classifier(arch, params, train, test, callbacks=Capture())
    assert states[0]["step"] == 2  # mid-epoch: the resume must restore the batch order too
    buffer = io.BytesIO()
    torch.save(states[0], buffer)  # as a killed attempt would have left it
    store.put_bytes(f"jobs/{job_id}/resume.pt", buffer.getvalue())

    job = run_job(prod_settings, app, job_id)
    version = version_row(prod_settings, job.result_version_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        store.download_file(version.checkpoint_key, path)
        resumed, config = load_checkpoint(path)
    assert resumed.keys() == full.state_dict.keys()
    assert all(torch.equal(resumed[k], full.state_dict[k]) for k in full.state_dict)
    assert any("resuming from step 2" in line for line in _logs(prod_settings, job_id))
    assert not store.exists(f"jobs/{job_id}/resume.pt")  # scratch removed on success
    # The common entries of the version config, and the classifier's own.
    assert config["architecture"] == arch.model_dump(mode="json")
    assert config["train_params"] == params.model_dump(mode="json")
    assert config["dataset_id"] == mnist_small["id"] and config["parent_version_id"] is None
    assert config["dataset_version_id"] == job.spec["dataset_version_id"]
    assert version.training_set["count"] == 64 == len(full.train_sample_ids)
    assert job.metrics["steps"] == full.metrics["steps"] == 8.0


def test_an_engine_error_fails_the_job_in_the_engines_words(
    api, app, prod_settings, mnist_small
) -> None:
    model_id = _model(api)
    job_id = _job(prod_settings, model_id, mnist_small["id"], PARAMS)
    # The model row changed under the queued job (the API would refuse this shape): the
    # engine finds labels its network cannot have and says which.
    with session_factory(prod_settings)() as session:
        narrow = {**ARCH, "num_classes": 2}
        session.execute(update(Model).where(Model.id == model_id).values(architecture=narrow))
        session.commit()
    assert Runner(prod_settings, app.state.store).run(job_id) == "failed"
    error = job_row(prod_settings, job_id).error
    assert error.startswith("training set has"), error  # no exception class in front
    assert "outside 0..1" in error and "num_classes=2" in error
