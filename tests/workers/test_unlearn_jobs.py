"""The classifier unlearn job's evidence is measured on what the version was trained on:
of a writer's samples, only those in the version's training mask are forgotten and
measured, with the per-label coverage the verdict reads. Runs in-process by the runner
against Postgres and the S3 server; small_cnn on the 600-sample MNIST slice, one thread."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from sqlalchemy import select

from api.jobs.schemas import TrainJobCreate, UnlearnJobCreate
from api.jobs.service import create_train_job, create_unlearn_job
from core.db import session_factory
from core.lineage import decode_mask
from models import Sample
from tests.support.db import version_row
from tests.support.runner import commit_job, run_job

ARCH = {"name": "small_cnn", "num_classes": 10, "width": 8, "input_size": [28, 28]}


def _writer_split_by_the_mask(settings: Any, dataset_id: str, mask: np.ndarray) -> str:
    """A writer some of whose training samples the version saw and some it did not."""
    with session_factory(settings)() as session:
        rows = session.execute(
            select(Sample.subject_id, Sample.position).where(
                Sample.dataset_id == dataset_id,
                Sample.split == "train",
                Sample.subject_id.is_not(None),
            )
        ).all()
    seen: dict[str, list[bool]] = {}
    for subject, position in rows:
        seen.setdefault(subject, []).append(bool(mask[position]))
    return next(s for s, bits in sorted(seen.items()) if any(bits) and not all(bits))


def test_forget_metrics_use_only_the_samples_the_version_was_trained_on(
    api, app, prod_settings, mnist_small
) -> None:
    model = api.post(
        "/api/v1/models", json={"name": f"cnn-{uuid.uuid4().hex[:8]}", "architecture": ARCH}
    ).json()
    params = {"epochs": 1, "batch_size": 32, "max_train_samples": 300, "seed": 1}
    body = TrainJobCreate(
        kind="train", model_id=model["id"], dataset_id=mnist_small["id"], params=params
    )
    job = run_job(prod_settings, app, commit_job(prod_settings, create_train_job, body))
    trained = version_row(prod_settings, job.result_version_id)
    mask = decode_mask(trained.training_mask)
    writer = _writer_split_by_the_mask(prod_settings, mnist_small["id"], mask)

    unlearn = UnlearnJobCreate(
        kind="unlearn",
        model_version_id=trained.id,
        method="finetune",
        forget={"subject_ids": [writer]},
        params={"epochs": 1},
    )
    job = run_job(prod_settings, app, commit_job(prod_settings, create_unlearn_job, unlearn))
    metrics = job.metrics
    assert 0 < metrics["forget_count_trained"] < metrics["forget_count_scope"], metrics
    assert metrics["forget_count"] == metrics["forget_count_trained"]
    for name in ("evaluation", "original_evaluation"):
        evaluation = metrics[name]
        assert evaluation["forget_count"] == metrics["forget_count_trained"], name
        assert evaluation["forget_count_scope"] == metrics["forget_count_scope"]
        coverage = evaluation["label_coverage"]
        assert sum(c["forget"] for c in coverage.values()) == metrics["forget_count_trained"]
        for c in coverage.values():
            assert 0 < c["forget"] <= c["trained"] and c["share"] == c["forget"] / c["trained"]
        assert set(evaluation["forget_label_accuracy"]) == set(coverage)
    # The writer's samples the version never saw stay out of the new version's lineage too.
    child = version_row(prod_settings, job.result_version_id)
    assert decode_mask(child.training_mask).sum() == mask.sum() - metrics["forget_count_trained"]
