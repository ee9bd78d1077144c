"""Training job for classifiers: dataset version → engine (plain or SISA) → one new
model version, through the train sequence every family shares (``training_job``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from contracts.classifier import ArchitectureConfig, TrainParams
from core.datasets.reader import ShardReader
from models import Job, Model
from workers.context import JobContext
from workers.engine.training import train_classifier
from workers.jobs import sisa_io
from workers.jobs.common import ContextCallbacks, SampleSet, load_split
from workers.jobs.training_job import Trained, Trainer, TrainingData, TrainingStart, run_training


class ClassifierTrainer(Trainer[SampleSet]):
    """The classifier part of the train job: the test split (where the dataset has one)
    is scored after every epoch; with ``spec.sisa`` the version is a SISA ensemble."""

    def read(
        self, session: Session, reader: ShardReader, job: Job, model: Model, version: int
    ) -> TrainingData[SampleSet]:
        assert job.dataset_id is not None
        train = load_split(session, reader, job.dataset_id, version, "train")
        try:
            test = load_split(session, reader, job.dataset_id, version, "test").arrays
        except ValueError:
            test = None
        return TrainingData(
            arch=ArchitectureConfig.model_validate(model.architecture),
            params=TrainParams.model_validate(job.params),
            train=train,
            extra={"test": test},
        )

    def fit(
        self,
        ctx: JobContext,
        job: Job,
        data: TrainingData[SampleSet],
        callbacks: ContextCallbacks,
        start: TrainingStart,
    ) -> Trained:
        arch, params, test = data.arch, data.params, data.extra["test"]
        assert isinstance(params, TrainParams)
        config: dict[str, Any] = {"architecture": arch.model_dump(mode="json")}
        sisa = job.spec.get("sisa")
        if sisa:
            ctx.log(f"SISA: {sisa['shards']} shards x {sisa['slices']} slices")
            shards, extra, metrics, ids = sisa_io.train(
                ctx, arch, params, data.train.arrays, test, sisa, callbacks
            )
            config["sisa"] = {**sisa, "seed": params.seed}
            return Trained(shards, metrics, ids, config, extra_files=extra)
        init = start.init_state_dict()
        trained = train_classifier(
            arch,
            params,
            data.train.arrays,
            test,
            callbacks=callbacks,
            resume=start.resume(),
            init_state_dict=init,
        )
        return Trained(trained.state_dict, trained.metrics, trained.train_sample_ids, config)


def run_train(ctx: JobContext, job: Job) -> dict[str, Any]:
    return run_training(ctx, job, ClassifierTrainer())
