"""Unlearning job: a version + a forget scope → a method (or SISA) → a new version whose
parent is the original and whose lineage no longer holds the forgotten samples; then
the evaluation that a certificate will carry."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from contracts.classifier import ArchitectureConfig, TrainParams
from core.datasets.reader import ShardReader
from models import Job, Model, ModelVersion
from workers.context import JobCancelled, JobContext
from workers.engine.errors import TrainingStopped
from workers.engine.forgetting import EvaluationSets, NetworkPredictor, evaluate_forgetting
from workers.engine.unlearning import UnlearnData, get_method
from workers.engine.unlearning.sisa import SisaEnsemble, unlearn_sisa
from workers.jobs import sisa_io
from workers.jobs.common import ContextCallbacks, ForgetSplit, version_split
from workers.jobs.evaluate import VIEWS_ARTIFACT, compute_views, views_json
from workers.jobs.publish import (
    VersionOutput,
    load_version_weights,
    publish_version,
    unlearning_record,
)
from workers.jobs.shadows import add_lira


def run_unlearn(ctx: JobContext, job: Job) -> dict[str, Any]:
    spec = job.spec
    reader = ShardReader(ctx.store)
    with ctx.factory() as session:
        original = session.get(ModelVersion, job.model_version_id)
        model = session.get(Model, job.model_id)
        assert original is not None and model is not None
        arch = ArchitectureConfig.model_validate(model.architecture)
        split, size = version_split(session, reader, job, original)
    recipe = TrainParams.model_validate(original.config.get("train_params") or {})
    forget, retain = split.forget, split.retain
    ctx.log(f"{job.method}: forgetting {len(forget)} of {len(split.trained.arrays)} samples")
    callbacks = ContextCallbacks(ctx, progress_span=(0.02, 0.8))
    started = time.perf_counter()
    extra: dict[str, dict[str, Any]] = {}
    try:
        if job.method == "sisa":
            state = sisa_io.load_state(ctx, original, arch, split.trained.arrays.sample_ids)
            report = unlearn_sisa(state, split.trained.arrays, forget.sample_ids, callbacks)
            new_weights, extra = sisa_io.pack(report.state)
            method_metrics = {
                "stages_retrained": float(report.stages_retrained),
                "stages_total": float(report.stages_total),
                "stage_fraction": report.stage_fraction,
                "affected_shards": float(len(report.affected_shards)),
            }
            predictor: Any = SisaEnsemble(report.state)
            original_predictor: Any = SisaEnsemble(state)
        else:
            weights = load_version_weights(ctx, original)
            data = UnlearnData(
                forget=forget,
                retain=retain,
                test=split.test,
                forget_labels=split.forget_labels,
                scope=spec["forget_kind"],
            )
            result = get_method(job.method).run(
                arch, weights, data, job.params, callbacks, train_params=recipe
            )
            for line in result.log[-20:]:
                ctx.log(line)
            new_weights, method_metrics = result.state_dict, dict(result.metrics)
            predictor = NetworkPredictor(arch, new_weights, memo=True)
            original_predictor = NetworkPredictor(arch, weights, memo=True)
    except TrainingStopped as exc:
        if ctx.should_stop():
            ctx.check()  # raises the precise reason: cancelled, stale or time limit
            raise JobCancelled("stopped") from None
        raise ValueError(str(exc)) from exc  # diverged: fail with the engine's reason
    seconds = time.perf_counter() - started

    metrics: dict[str, Any] = {
        "method": job.method,
        "exact": bool(spec.get("exact")),
        "unlearn_seconds": seconds,
        "forget_count": len(forget),
        # Of the scope's samples in the dataset, those this version was trained on: the
        # ones forgotten and measured (the rest it never saw).
        "forget_count_trained": len(forget),
        "forget_count_scope": split.scope_count,
        "retain_count": len(retain),
        "method_metrics": {k: float(v) for k, v in method_metrics.items()},
    }
    if spec.get("evaluate", True):
        ctx.log(
            "evaluating against the original"
            + (" and the reference" if spec.get("reference_job_id") else "")
        )
        evaluated, views = _evaluate(ctx, job, split, predictor, original_predictor, arch)
        metrics.update(evaluated)
        if shadows := int(spec.get("shadow_models") or 0):
            add_lira(
                ctx, job, original, arch, recipe, split, predictor, original_predictor, metrics,
                shadows,
            )
    else:
        views = None
    ctx.progress(0.97, force=True)
    config = {
        "architecture": arch.model_dump(mode="json"),
        "train_params": recipe.model_dump(mode="json"),
        "dataset_id": spec["dataset_id"],
        "dataset_version_id": spec["dataset_version_id"],
        "parent_version_id": original.id,
        "unlearning": unlearning_record(job, bool(spec.get("exact")), forget_count=len(forget)),
    }
    if original.config.get("sisa"):
        config["sisa"] = original.config["sisa"]
    with tempfile.TemporaryDirectory(prefix="expunge-views-") as tmp:
        extra_paths: dict[str, tuple[Path, dict[str, Any]]] = {}
        if views is not None:
            local = Path(tmp) / "views.json"
            local.write_bytes(views_json(views))
            extra_paths[VIEWS_ARTIFACT] = (local, {"size": local.stat().st_size})
        publish_version(
            ctx,
            job,
            VersionOutput(
                model_id=model.id,
                source="unlearn",
                state_dict=new_weights,
                config=config,
                metrics=metrics,
                trained_sample_ids=retain.sample_ids,
                trained_positions=split.retain_positions,
                dataset_size=size,
                dataset_version_id=spec["dataset_version_id"],
                parent_version_id=original.id,
                extra_files=extra,
                extra_paths=extra_paths,
            ),
        )
    return metrics


def _evaluate(
    ctx: JobContext,
    job: Job,
    split: ForgetSplit,
    predictor: Any,
    original: Any,
    arch: ArchitectureConfig,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The evidence (vs the original and, if finished, the reference) and the views."""
    if split.test is None:
        ctx.log("no test split: UA and RA only")
        return {}, None
    trained = {"forget_count_trained": len(split.forget), "forget_count_scope": split.scope_count}
    if len(split.forget) == 0:
        empty = {
            **trained,
            "reason": "nothing to verify: the version was never trained on the scope's "
            "samples (by its lineage), so it is exact by lineage",
        }
        return {"evaluation": empty, "original_evaluation": dict(empty)}, None
    sets = EvaluationSets.build(
        split.forget,
        split.retain,
        split.test,
        forget_labels=split.forget_labels,
        seed=int(job.params.get("seed", 0)),
    )
    forget_test = None
    if split.forget_labels:
        keep = [i for i, y in enumerate(split.test.labels) if int(y) in split.forget_labels]
        forget_test = split.test.subset(keep)
    reference = _reference_predictor(ctx, job, arch)
    evaluation = evaluate_forgetting(predictor, sets, reference=reference, forget_test=forget_test)
    ctx.check()
    before = evaluate_forgetting(
        original, sets, forget_test=forget_test, relearn=False, probe=False
    )
    # The evidence is measured on what the version was trained on, per label too: a scope
    # that is a whole label of the model (a person of a face classifier) gets class checks.
    coverage = split.label_coverage()
    for measured, model in ((evaluation, predictor), (before, original)):
        measured.update(trained, label_coverage=coverage)
        measured["forget_label_accuracy"] = _label_accuracy(model, split)
    for name in ("UA", "RA", "TA", "MIA"):
        ctx.metric(name, evaluation[name])
    ctx.check()
    views = compute_views(
        ctx,
        split,
        predictor,
        arch.num_classes,
        dataset_id=job.spec["dataset_id"],
        before=original,
        reference=reference,
        retain=sets.retain,
        seed=int(job.params.get("seed", 0)),
    )
    return {"evaluation": evaluation, "original_evaluation": before}, views


def _label_accuracy(model: Any, split: ForgetSplit) -> dict[str, float]:
    """Accuracy of ``model`` on the forget samples of each of their labels."""
    forget = split.forget
    predicted = np.asarray(model.logits(forget)).argmax(axis=1)
    labels = np.asarray(forget.labels)
    return {
        str(label): float((predicted[labels == label] == label).mean())
        for label in np.unique(labels).tolist()
    }


def _reference_predictor(ctx: JobContext, job: Job, arch: ArchitectureConfig) -> Any:
    """The retrained reference's network, if it has already finished (else gaps only later)."""
    ref_id = job.spec.get("reference_job_id")
    if not ref_id:
        return None
    with ctx.factory() as session:
        ref = session.get(Job, ref_id)
        version = (
            session.get(ModelVersion, ref.result_version_id)
            if ref and ref.result_version_id
            else None
        )
    if version is None:
        ctx.log("the retrain reference has not finished yet; output divergences are skipped")
        return None
    return NetworkPredictor(arch, load_version_weights(ctx, version), memo=True)
