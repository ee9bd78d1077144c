"""Training job: dataset version → engine (plain or SISA) → one new model version."""

from __future__ import annotations

from typing import Any

from contracts.classifier import ArchitectureConfig, TrainParams
from core.datasets.reader import ShardReader
from models import Job, Model, ModelVersion
from workers.context import JobCancelled, JobContext
from workers.engine.errors import TrainingStopped
from workers.engine.training import train_classifier
from workers.jobs import sisa_io
from workers.jobs.common import ContextCallbacks, dataset_size, load_split
from workers.jobs.publish import VersionOutput, load_version_weights, publish_version


def run_train(ctx: JobContext, job: Job) -> dict[str, Any]:
    params = TrainParams.model_validate(job.params)
    sisa = job.spec.get("sisa")
    reader = ShardReader(ctx.store)
    with ctx.factory() as session:
        model = session.get(Model, job.model_id)
        assert model is not None and job.dataset_id is not None
        arch = ArchitectureConfig.model_validate(model.architecture)
        version_number = int(job.spec["dataset_version"])
        parent = session.get(ModelVersion, job.model_version_id) if job.model_version_id else None
        ctx.log(f"loading dataset {job.dataset_id} v{version_number}")
        train = load_split(session, reader, job.dataset_id, version_number, "train")
        try:
            test = load_split(session, reader, job.dataset_id, version_number, "test").arrays
        except ValueError:
            test = None
        size = dataset_size(session, job.dataset_id)
    ctx.check()
    config: dict[str, Any] = {
        "architecture": arch.model_dump(mode="json"),
        "train_params": params.model_dump(mode="json"),
        "dataset_id": job.dataset_id,
        "dataset_version_id": job.spec["dataset_version_id"],
        "parent_version_id": parent.id if parent else None,
    }
    callbacks = ContextCallbacks(ctx, progress_span=(0.02, 0.97))
    try:
        if sisa:
            ctx.log(f"SISA: {sisa['shards']} shards x {sisa['slices']} slices")
            result = sisa_io.train(ctx, arch, params, train.arrays, test, sisa, callbacks)
            state_dict, extra, metrics, trained_ids = result
            config["sisa"] = {**sisa, "seed": params.seed}
        else:
            init = load_version_weights(ctx, parent) if parent is not None else None
            resume = callbacks.load_resume()
            if resume is not None:
                ctx.log(f"resuming from step {resume.get('step')}")
            trained = train_classifier(
                arch,
                params,
                train.arrays,
                test,
                callbacks=callbacks,
                resume=resume,
                init_state_dict=init,
            )
            state_dict, extra = trained.state_dict, {}
            metrics = {k: float(v) for k, v in trained.metrics.items()}
            trained_ids = trained.train_sample_ids
    except TrainingStopped:
        ctx.check()  # raises the precise reason: cancelled, stale, or time limit
        raise JobCancelled("stopped") from None

    publish_version(
        ctx,
        job,
        VersionOutput(
            model_id=model.id,
            source="train",
            state_dict=state_dict,
            config=config,
            metrics=metrics,
            trained_sample_ids=trained_ids,
            trained_positions=train.positions_of(sorted(trained_ids)),
            dataset_size=size,
            dataset_version_id=job.spec["dataset_version_id"],
            parent_version_id=parent.id if parent else None,
            extra_files=extra,
        ),
    )
    return metrics
