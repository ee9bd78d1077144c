"""Publishing a job's result: checkpoint + config + sample list in storage, then one
transaction in which the job succeeds (fenced) and exactly one model version appears."""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from core.jobs import record_event
from core.lineage import encode_mask
from core.registry import add_model_version
from models import Job, ModelVersion
from models.base import utcnow
from workers.context import JobContext, StaleAttempt
from workers.engine.checkpoint import load_checkpoint, save_checkpoint, sha256_file


def output_prefix(model_id: str, job_id: str) -> str:
    """Keyed by job, so a re-run overwrites its own objects instead of orphaning them."""
    return f"models/{model_id}/jobs/{job_id}"


def load_version_weights(ctx: JobContext, version: ModelVersion) -> dict[str, Any]:
    return load_version_file(ctx, version.checkpoint_key)


def load_version_file(ctx: JobContext, key: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="expunge-ckpt-") as tmp:
        path = Path(tmp) / "model.safetensors"
        ctx.store.download_file(key, path)
        state_dict, _ = load_checkpoint(path)
    return state_dict


@dataclass
class VersionOutput:
    model_id: str
    source: str  # train | unlearn
    state_dict: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, Any]
    trained_sample_ids: list[str]
    trained_positions: np.ndarray
    dataset_size: int
    dataset_version_id: str
    parent_version_id: str | None
    # Extra tensor files kept beside the checkpoint (e.g. SISA's per-slice weights).
    extra_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Files already written (e.g. a ddpm delta): name -> (local path, artifact info).
    extra_paths: dict[str, tuple[Path, dict[str, Any]]] = field(default_factory=dict)


def unlearning_record(job: Job, exact: bool, **extra: Any) -> dict[str, Any]:
    """What a version's config says of the unlearning run that made it: method, params,
    and which scope it forgot (by hash: the scope itself may name people)."""
    return {
        "method": job.method,
        "params": job.params,
        "exact": exact,
        "forget_kind": job.spec.get("forget_kind", "concept"),
        "forget_hash": job.spec["forget_hash"],
        **extra,
    }


def initial_status(job: Job) -> str:
    """A deletion workflow's candidate is blocked (``tainted``) until it is verified and
    its request closes: it derives from the data being deleted, and a failed
    verification means it may still hold it. Every other new version is usable at once."""
    return "tainted" if (job.spec or {}).get("workflow") else "active"


def succeed(
    ctx: JobContext,
    job: Job,
    metrics: dict[str, Any],
    artifacts: list[dict[str, Any]] | None = None,
) -> None:
    """A job that publishes no version (evaluate, generate) succeeds: its metrics and
    artifacts, fenced, in one transaction with its final progress and state events."""
    values: dict[str, Any] = {"artifacts": artifacts} if artifacts is not None else {}
    with ctx.factory() as session:
        ctx._fenced(
            session,
            state="succeeded",
            progress=1.0,
            metrics=metrics,
            finished_at=utcnow(),
            wall_seconds=ctx.wall_seconds,
            peak_memory_mb=round(ctx.peak_rss_mb, 1),
            **values,
        )
        record_event(session, job.id, "progress", {"progress": 1.0})
        record_event(session, job.id, "state", {"state": "succeeded"})
        session.commit()


def publish_version(ctx: JobContext, job: Job, out: VersionOutput) -> ModelVersion:
    prefix = output_prefix(out.model_id, job.id)
    ctx.scratch_prefixes.append(prefix + "/")
    ids = sorted(out.trained_sample_ids)
    ids_blob = ("\n".join(ids) + "\n").encode()
    training_set = {
        "split": "train",
        "count": len(ids),
        "sample_ids_sha256": hashlib.sha256(ids_blob).hexdigest(),
    }
    config = {**out.config, "job_id": job.id, "training_set": training_set}
    artifacts: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="expunge-out-") as tmp:
        path = Path(tmp) / "model.safetensors"
        sha256 = save_checkpoint(path, out.state_dict, config)
        info = ctx.store.put_file(f"{prefix}/model.safetensors", path)
        artifacts.append({"name": "checkpoint", "key": info.key, "sha256": sha256})
        for name, tensors in out.extra_files.items():
            extra = Path(tmp) / f"{name}.safetensors"
            digest = save_checkpoint(extra, tensors, {"of": info.key})
            ctx.store.put_file(f"{prefix}/{name}.safetensors", extra)
            artifacts.append(
                {"name": name, "key": f"{prefix}/{name}.safetensors", "sha256": digest}
            )
        for name, (local, extra_info) in out.extra_paths.items():
            stored = ctx.store.put_file(f"{prefix}/{name}{local.suffix}", local)
            artifacts.append(
                {"name": name, "key": stored.key, "sha256": sha256_file(local), **extra_info}
            )
    ctx.store.put_bytes(
        f"{prefix}/config.json",
        json.dumps(config, sort_keys=True, indent=2).encode(),
        content_type="application/json",
    )
    ctx.store.put_bytes(f"{prefix}/sample_ids.txt", ids_blob, content_type="text/plain")
    artifacts += [
        {"name": "config", "key": f"{prefix}/config.json"},
        {"name": "sample_ids", "key": f"{prefix}/sample_ids.txt"},
    ]
    mask = encode_mask(out.trained_positions, out.dataset_size)
    with ctx.factory() as session:
        existing = session.scalar(select(ModelVersion).where(ModelVersion.job_id == job.id))
        if existing is not None:  # an earlier attempt already committed: never a second one
            raise StaleAttempt(f"job {job.id} already produced version {existing.id}")
        version = add_model_version(
            session,
            out.model_id,
            status=initial_status(job),
            source=out.source,
            checkpoint_key=f"{prefix}/model.safetensors",
            config_key=f"{prefix}/config.json",
            sample_ids_key=f"{prefix}/sample_ids.txt",
            sha256=sha256,
            size_bytes=info.size,
            config=config,
            metrics=out.metrics,
            parent_version_id=out.parent_version_id,
            job_id=job.id,
            dataset_version_id=out.dataset_version_id,
            training_set=training_set,
            training_mask=mask,
            created_by=job.created_by,
        )
        ctx._fenced(
            session,
            state="succeeded",
            progress=1.0,
            metrics=out.metrics,
            result_version_id=version.id,
            artifacts=artifacts,
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
    return version
