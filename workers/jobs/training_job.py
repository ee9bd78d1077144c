"""The train job every family shares: load → resume → train → publish, written once.

A family contributes a ``Trainer``: what it reads in the job's session (its architecture,
params, training split and anything else it needs) and how it fits a model from that.
This module does the rest the same way for all of them: the dataset version and parent
version, the resume state a killed attempt left, cancellation and time limits, progress,
the version config's common entries, and publishing exactly one model version with its
lineage (the samples it trained on) and any files the trainer wrote beside its weights.
"""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel
from sqlalchemy.orm import Session

from core.datasets.reader import ShardReader
from models import Job, Model, ModelVersion
from workers.context import JobContext
from workers.engine.errors import EngineError
from workers.jobs.common import ContextCallbacks, dataset_size, stop_reason
from workers.jobs.publish import VersionOutput, load_version_weights, publish_version

# The share of the job's progress bar the training itself fills (loading before it,
# publishing after it).
TRAIN_PROGRESS = (0.02, 0.97)


class TrainRows(Protocol):
    """A training split as the job needs it: where each sample sits in the dataset (its
    lineage mask index). Images (``SampleSet``) and text rows both are one."""

    def positions_of(self, sample_ids: list[str]) -> np.ndarray: ...


RowsT = TypeVar("RowsT", bound=TrainRows)


@dataclass
class TrainingData(Generic[RowsT]):
    """What a trainer read in the job's session: architecture, params, the training split,
    and anything else its family needs (a test split, class names) under ``extra``."""

    arch: Any
    params: BaseModel
    train: RowsT
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Trained:
    """A fitted model: its weights, summary metrics, the samples it trained on, the
    family's own entries of the version config, any tensor files kept beside it and any
    files it wrote itself (under ``TrainingStart.workdir``: name -> (path, artifact info))."""

    state_dict: dict[str, Any]
    metrics: dict[str, Any]
    sample_ids: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    extra_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra_paths: dict[str, tuple[Path, dict[str, Any]]] = field(default_factory=dict)


class TrainingStart:
    """Where a run begins, loaded only if the trainer asks: the parent version's weights
    (fine-tuning) and the resume state an earlier attempt of this job left; ``workdir``
    is a folder that lives until the version is published (for ``Trained.extra_paths``)."""

    def __init__(
        self,
        ctx: JobContext,
        callbacks: ContextCallbacks,
        parent: ModelVersion | None,
        workdir: Path,
    ) -> None:
        self.ctx, self.callbacks, self.parent, self.workdir = ctx, callbacks, parent, workdir

    def init_state_dict(self) -> dict[str, Any] | None:
        return load_version_weights(self.ctx, self.parent) if self.parent is not None else None

    def resume(self) -> dict[str, Any] | None:
        state = self.callbacks.load_resume()
        if state is not None:
            self.ctx.log(f"resuming from step {state.get('step')}")
        return state


class Trainer(ABC, Generic[RowsT]):
    """One family's part of the train job."""

    @abstractmethod
    def read(
        self, session: Session, reader: ShardReader, job: Job, model: Model, version: int
    ) -> TrainingData[RowsT]:
        """Parse the model's architecture and the job's params, load the data (in the
        job's session, so nothing outlives it but arrays)."""

    @abstractmethod
    def fit(
        self,
        ctx: JobContext,
        job: Job,
        data: TrainingData[RowsT],
        callbacks: ContextCallbacks,
        start: TrainingStart,
    ) -> Trained:
        """Train; engine errors (diverged, stopped, bad data) propagate as ``EngineError``."""


def run_training(ctx: JobContext, job: Job, trainer: Trainer[Any]) -> dict[str, Any]:
    """Run a train job with ``trainer``; the job's metrics."""
    reader = ShardReader(ctx.store)
    with ctx.factory() as session:
        model = session.get(Model, job.model_id)
        assert model is not None and job.dataset_id is not None
        number = int(job.spec["dataset_version"])
        parent = session.get(ModelVersion, job.model_version_id) if job.model_version_id else None
        ctx.log(f"loading dataset {job.dataset_id} v{number}")
        data = trainer.read(session, reader, job, model, number)
        size = dataset_size(session, job.dataset_id)
    ctx.check()
    callbacks = ContextCallbacks(ctx, progress_span=TRAIN_PROGRESS)
    with tempfile.TemporaryDirectory(prefix="expunge-train-") as workdir:
        start = TrainingStart(ctx, callbacks, parent, Path(workdir))
        try:
            trained = trainer.fit(ctx, job, data, callbacks, start)
        except EngineError as exc:
            raise stop_reason(ctx, exc) from exc
        return _publish(ctx, job, model.id, parent, data, trained, size)


def _publish(
    ctx: JobContext,
    job: Job,
    model_id: str,
    parent: ModelVersion | None,
    data: TrainingData[Any],
    trained: Trained,
    size: int,
) -> dict[str, Any]:
    """The one version of the job (the common config entries added); the job's metrics."""
    metrics: dict[str, Any] = {k: float(v) for k, v in trained.metrics.items()}
    parent_id = parent.id if parent is not None else None
    config: dict[str, Any] = {
        **trained.config,
        "train_params": data.params.model_dump(mode="json"),
        "dataset_id": job.dataset_id,
        "dataset_version_id": job.spec["dataset_version_id"],
        "parent_version_id": parent_id,
    }
    ids = sorted(trained.sample_ids)
    publish_version(
        ctx,
        job,
        VersionOutput(
            model_id=model_id,
            source="train",
            state_dict=trained.state_dict,
            config=config,
            metrics=metrics,
            trained_sample_ids=ids,
            trained_positions=data.train.positions_of(ids),
            dataset_size=size,
            dataset_version_id=job.spec["dataset_version_id"],
            parent_version_id=parent_id,
            extra_files=trained.extra_files,
            extra_paths=trained.extra_paths,
        ),
    )
    return metrics
