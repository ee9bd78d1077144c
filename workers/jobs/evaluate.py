"""Evaluation job: accuracy and loss per split, and, given a forget scope, the forgetting
evidence (UA, RA, TA, MIA, loss AUC, relearn, probe; divergences against a reference)
plus the Compare views (``views.json``, listed in the job's artifacts)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from contracts.classifier import ArchitectureConfig, EvaluateParams
from core.datasets.reader import ShardReader
from models import Job, Model, ModelVersion
from workers.context import JobContext
from workers.engine import metrics as M
from workers.engine.data import ImageArrays
from workers.engine.forgetting import EvaluationSets, NetworkPredictor, evaluate_forgetting
from workers.engine.views import ViewSets, build_views
from workers.jobs import sisa_io
from workers.jobs.common import ForgetSplit, load_split, split_for_forgetting
from workers.jobs.publish import load_version_weights, succeed

# The artifact name under which a job lists its Compare views (the API serves it).
VIEWS_ARTIFACT = "views"


def compute_views(
    ctx: JobContext,
    split: ForgetSplit,
    after: Any,
    num_classes: int,
    *,
    dataset_id: str,
    before: Any = None,
    reference: Any = None,
    retain: ImageArrays | None = None,
    seed: int = 0,
) -> dict[str, Any] | None:
    """The Compare views of ``after`` (``before`` / ``reference`` where known), or None.

    A failure here is logged and skipped: the views are a convenience for the dashboard,
    never a reason to lose the evaluation (or the unlearning) they describe.
    """
    if split.test is None or not split.forget_mask.any():
        return None
    # The evaluation's own retain sample, by default, so memoised logits are reused.
    retain = split.retain if retain is None else retain
    sets = ViewSets(split.forget, retain, split.test, split.forget_labels)
    try:
        views = build_views(after, sets, num_classes, before=before, reference=reference, seed=seed)
    except (ValueError, RuntimeError) as exc:
        ctx.log(f"compare views skipped: {exc}")
        return None
    views["dataset_id"] = dataset_id
    return views


def views_json(views: dict[str, Any]) -> bytes:
    """Compact and strict (no NaN), so any JSON parser reads it."""
    return json.dumps(views, separators=(",", ":"), allow_nan=False).encode()


def predictor_for(
    ctx: JobContext, version: ModelVersion, arch: ArchitectureConfig, device: str
) -> Any:
    weights = load_version_weights(ctx, version)
    if version.config.get("sisa"):
        return sisa_io.ensemble_from_checkpoint(arch, version.config["sisa"], weights, device)
    return NetworkPredictor(arch, weights, device=device, memo=True)


def run_evaluate(ctx: JobContext, job: Job) -> dict[str, Any]:
    params = EvaluateParams.model_validate(job.params)
    reader = ShardReader(ctx.store)
    splits: list[str] = list(job.spec.get("splits", ["test"]))
    scope = job.spec.get("forget")
    with ctx.factory() as session:
        version = session.get(ModelVersion, job.model_version_id)
        model = session.get(Model, job.model_id)
        assert version is not None and model is not None and job.dataset_id is not None
        arch = ArchitectureConfig.model_validate(model.architecture)
        number = int(job.spec["dataset_version"])
        data = {s: load_split(session, reader, job.dataset_id, number, s).arrays for s in splits}
        forget_split = (
            split_for_forgetting(
                session, reader, job.dataset_id, number, version.training_mask, scope
            )
            if scope and version.training_mask is not None
            else None
        )
        ref_id = job.spec.get("reference_version_id")
        reference_version = session.get(ModelVersion, ref_id) if ref_id else None
        parent_id = version.parent_version_id if forget_split is not None else None
        parent = session.get(ModelVersion, parent_id) if parent_id else None
    predictor = predictor_for(ctx, version, arch, params.device)
    metrics: dict[str, Any] = {}
    artifacts: list[dict[str, Any]] = []
    per_class: dict[str, Any] = {}
    for i, split in enumerate(splits):
        ctx.check()
        arrays = data[split]
        logits = predictor.logits(arrays)
        metrics[f"{split}_accuracy"] = M.accuracy(logits, arrays.labels)
        metrics[f"{split}_loss"] = float(M.cross_entropy(logits, arrays.labels).mean())
        metrics[f"{split}_count"] = len(arrays)
        predicted = logits.argmax(axis=1)
        per_class[split] = {
            str(c): float((predicted[arrays.labels == c] == c).mean())
            for c in np.unique(arrays.labels)
        }
        ctx.metric(f"{split}_accuracy", metrics[f"{split}_accuracy"])
        ctx.log(f"{split}: accuracy {metrics[f'{split}_accuracy']:.4f} on {len(arrays)} samples")
        ctx.progress((i + 1) / (len(splits) + (1 if forget_split else 0)))
    metrics["per_class_accuracy"] = per_class
    if forget_split is not None and forget_split.test is not None:
        sets = EvaluationSets.build(
            forget_split.forget,
            forget_split.retain,
            forget_split.test,
            forget_labels=forget_split.forget_labels,
        )
        reference = (
            predictor_for(ctx, reference_version, arch, params.device)
            if reference_version
            else None
        )
        metrics["evaluation"] = evaluate_forgetting(predictor, sets, reference=reference)
        for name in ("UA", "RA", "TA", "MIA"):
            ctx.metric(name, metrics["evaluation"][name])
        ctx.check()
        before = (
            predictor_for(ctx, parent, arch, params.device)
            if parent is not None and parent.status != "purged"
            else None
        )
        views = compute_views(
            ctx,
            forget_split,
            predictor,
            arch.num_classes,
            dataset_id=job.dataset_id,
            before=before,
            reference=reference,
            retain=sets.retain,
        )
        if views is not None:
            key = f"jobs/{job.id}/views.json"
            data = views_json(views)
            ctx.store.put_bytes(key, data, content_type="application/json")
            artifacts.append({"name": VIEWS_ARTIFACT, "key": key, "size": len(data)})
    succeed(ctx, job, metrics, artifacts)
    return metrics
