"""Training job: dataset version → engine → checkpoint in storage → one new model version."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core.datasets.reader import ShardReader
from core.jobs import record_event
from core.registry import add_model_version
from models import Job, Model, ModelVersion
from models.base import utcnow
from workers.context import JobCancelled, JobContext, StaleAttempt
from workers.engine.checkpoint import load_checkpoint, save_checkpoint
from workers.engine.config import ArchitectureConfig, TrainParams
from workers.engine.errors import TrainingStopped
from workers.engine.training import train_classifier
from workers.jobs.common import ContextCallbacks, load_split


def output_prefix(model_id: str, job_id: str) -> str:
    """Keyed by job, so a re-run overwrites its own objects instead of orphaning them."""
    return f"models/{model_id}/jobs/{job_id}"


def load_version_weights(ctx: JobContext, version: ModelVersion) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="expunge-ckpt-") as tmp:
        path = Path(tmp) / "model.safetensors"
        ctx.store.download_file(version.checkpoint_key, path)
        state_dict, _ = load_checkpoint(path)
    return state_dict


def run_train(ctx: JobContext, job: Job) -> dict[str, Any]:
    params = TrainParams.model_validate(job.params)
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
    ctx.check()
    init = load_version_weights(ctx, parent) if parent is not None else None
    callbacks = ContextCallbacks(ctx, progress_span=(0.02, 0.97))
    resume = callbacks.load_resume()
    if resume is not None:
        ctx.log(f"resuming from step {resume.get('step')}")
    prefix = output_prefix(model.id, job.id)
    ctx.scratch_prefixes.append(prefix + "/")
    ctx.log(f"training {arch.name} on {len(train.arrays)} samples for {params.epochs} epoch(s)")
    try:
        result = train_classifier(
            arch,
            params,
            train.arrays,
            test,
            callbacks=callbacks,
            resume=resume,
            init_state_dict=init,
        )
    except TrainingStopped:
        ctx.check()  # raises the precise reason: cancelled, stale, or time limit
        raise JobCancelled("stopped") from None

    trained_ids = sorted(result.train_sample_ids)
    ids_blob = ("\n".join(trained_ids) + "\n").encode()
    ids_sha = hashlib.sha256(ids_blob).hexdigest()
    excluded = sorted(set(train.arrays.sample_ids) - set(trained_ids))
    training_set = {
        "split": "train",
        "count": len(trained_ids),
        "excluded_sample_ids": excluded[:10_000],
        "excluded_count": len(excluded),
        "sample_ids_sha256": ids_sha,
    }
    config = {
        "architecture": arch.model_dump(mode="json"),
        "train_params": params.model_dump(mode="json"),
        "job_id": job.id,
        "dataset_id": job.dataset_id,
        "dataset_version_id": job.spec["dataset_version_id"],
        "parent_version_id": parent.id if parent else None,
        "training_set": training_set,
    }
    with tempfile.TemporaryDirectory(prefix="expunge-out-") as tmp:
        path = Path(tmp) / "model.safetensors"
        sha256 = save_checkpoint(path, result.state_dict, config)
        info = ctx.store.put_file(f"{prefix}/model.safetensors", path)
    ctx.store.put_bytes(
        f"{prefix}/config.json",
        json.dumps(config, sort_keys=True, indent=2).encode(),
        content_type="application/json",
    )
    ctx.store.put_bytes(f"{prefix}/sample_ids.txt", ids_blob, content_type="text/plain")
    metrics = {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}
    finalize(ctx, job, model.id, parent, sha256, info.size, config, metrics, training_set, prefix)
    return metrics


def finalize(
    ctx: JobContext,
    job: Job,
    model_id: str,
    parent: ModelVersion | None,
    sha256: str,
    size: int,
    config: dict[str, Any],
    metrics: dict[str, float],
    training_set: dict[str, Any],
    prefix: str,
) -> None:
    """One transaction: the job succeeds (fenced) and exactly one version appears."""
    with ctx.factory() as session:
        existing = session.scalar(select(ModelVersion).where(ModelVersion.job_id == job.id))
        if existing is not None:  # an earlier attempt already committed: never a second one
            raise StaleAttempt(f"job {job.id} already produced version {existing.id}")
        version = add_model_version(
            session,
            model_id,
            status="active",
            source="train",
            checkpoint_key=f"{prefix}/model.safetensors",
            config_key=f"{prefix}/config.json",
            sample_ids_key=f"{prefix}/sample_ids.txt",
            sha256=sha256,
            size_bytes=size,
            config=config,
            metrics=metrics,
            parent_version_id=parent.id if parent else None,
            job_id=job.id,
            dataset_version_id=job.spec["dataset_version_id"],
            training_set=training_set,
            created_by=job.created_by,
        )
        ctx._fenced(
            session,
            state="succeeded",
            progress=1.0,
            metrics=metrics,
            result_version_id=version.id,
            artifacts=[
                {"name": "checkpoint", "key": f"{prefix}/model.safetensors", "sha256": sha256},
                {"name": "config", "key": f"{prefix}/config.json"},
                {"name": "sample_ids", "key": f"{prefix}/sample_ids.txt"},
            ],
            finished_at=utcnow(),
            wall_seconds=ctx.wall_seconds,
            peak_memory_mb=round(ctx.peak_rss_mb, 1),
        )
        record_event(session, job.id, "progress", {"progress": 1.0})
        record_event(
            session, job.id, "state", {"state": "succeeded", "result_version_id": version.id}
        )
        session.commit()
    ctx.scratch_prefixes.clear()
    ctx.store.delete_prefix(f"jobs/{job.id}/")
