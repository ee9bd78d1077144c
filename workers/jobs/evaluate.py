"""Evaluation job: accuracy and loss of a model version on splits of a dataset version."""

from __future__ import annotations

from typing import Any

from core.datasets.reader import ShardReader
from core.jobs import record_event
from models import Job, Model, ModelVersion
from models.base import utcnow
from workers.context import JobContext
from workers.engine.config import ArchitectureConfig, EvaluateParams
from workers.engine.evaluation import evaluate_classifier
from workers.jobs.common import load_split
from workers.jobs.train import load_version_weights


def run_evaluate(ctx: JobContext, job: Job) -> dict[str, Any]:
    params = EvaluateParams.model_validate(job.params)
    reader = ShardReader(ctx.store)
    splits: list[str] = list(job.spec.get("splits", ["test"]))
    with ctx.factory() as session:
        version = session.get(ModelVersion, job.model_version_id)
        model = session.get(Model, job.model_id)
        assert version is not None and model is not None and job.dataset_id is not None
        arch = ArchitectureConfig.model_validate(model.architecture)
        number = int(job.spec["dataset_version"])
        data = {s: load_split(session, reader, job.dataset_id, number, s) for s in splits}
    state_dict = load_version_weights(ctx, version)
    metrics: dict[str, Any] = {}
    details: dict[str, Any] = {}
    for i, split in enumerate(splits):
        ctx.check()
        result = evaluate_classifier(
            arch, state_dict, data[split].arrays, params.batch_size, params.device
        )
        metrics[f"{split}_accuracy"] = result["accuracy"]
        metrics[f"{split}_loss"] = result["loss"]
        metrics[f"{split}_count"] = result["count"]
        details[split] = result
        ctx.metric(f"{split}_accuracy", result["accuracy"])
        ctx.log(f"{split}: accuracy {result['accuracy']:.4f} on {result['count']} samples")
        ctx.progress((i + 1) / len(splits))
    with ctx.factory() as session:
        ctx._fenced(
            session,
            state="succeeded",
            progress=1.0,
            metrics={
                **metrics,
                "per_class_accuracy": {s: d.get("per_class_accuracy") for s, d in details.items()},
            },
            finished_at=utcnow(),
            wall_seconds=ctx.wall_seconds,
            peak_memory_mb=round(ctx.peak_rss_mb, 1),
        )
        record_event(session, job.id, "state", {"state": "succeeded"})
        session.commit()
    return metrics
