"""Tuning job: find the parameters of a method that fit *this* network, before a real
deletion request needs them.

Configurations tuned at one scale overshoot at another (issue #13: ``gradient_ascent``
and ``scrub`` left a full-width ResNet-18 at 13 % and 23 % test accuracy), so a model's
deletion policy can be tuned on the model itself. A pseudo-forget set (a seeded random
subset of the samples the version was trained on, chosen by the API) stands in for a
request: the exact retrain on the rest is the reference, each candidate runs from the
version, and is scored with the verdict a deletion would get (the policy's thresholds
against the original, and the strong membership test when the policy names
``shadow_models``: no check may fail) and its Avg. Gap to the retrain (UA, RA, TA,
MIA). The winner passes with the smallest gap (cheaper on ties); with ``apply`` it becomes the
policy's ``method`` and ``method_params``, recorded in the audit log. Nothing is published:
no model version, no change to the version's lineage.
"""

from __future__ import annotations

from typing import Any

from contracts.classifier import ArchitectureConfig, TrainParams
from core.audit.log import append as audit
from core.datasets.reader import ShardReader
from core.deletion.policy import DeletionPolicy, verify
from core.jobs import record_event
from models import Job, Model, ModelVersion
from models.base import utcnow
from workers.context import JobCancelled, JobContext
from workers.engine.errors import TrainingStopped
from workers.engine.forgetting import (
    EvaluationSets,
    NetworkPredictor,
    comparison,
    evaluate_forgetting,
)
from workers.engine.unlearning import UnlearnData, UnlearningDiverged, get_method
from workers.jobs.common import ContextCallbacks, version_split
from workers.jobs.publish import load_version_weights
from workers.jobs.shadows import add_lira

# Keys copied into the audit event of each candidate (numbers only, no sample ids).
SCORED = ("UA", "RA", "TA", "MIA", "loss_auc")


def _numbers(evaluation: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(evaluation[k]), 4) for k in SCORED if k in evaluation}


def run_tune(ctx: JobContext, job: Job) -> dict[str, Any]:
    try:
        return _tune(ctx, job)
    except TrainingStopped:
        if ctx.should_stop():
            ctx.check()  # raises the precise reason: cancelled, stale or time limit
        raise JobCancelled("stopped") from None


def _tune(ctx: JobContext, job: Job) -> dict[str, Any]:
    spec, seed = job.spec, int(job.spec.get("seed", 0))
    device = str(spec.get("device") or "cpu")
    reader = ShardReader(ctx.store)
    with ctx.factory() as session:
        version = session.get(ModelVersion, job.model_version_id)
        model = session.get(Model, job.model_id)
        assert version is not None and model is not None
        arch = ArchitectureConfig.model_validate(model.architecture)
        split, _ = version_split(session, reader, job, version)
        policy = DeletionPolicy.for_family(model.family, model.deletion_policy)
    if split.test is None or len(split.test) == 0:
        raise ValueError("tuning scores candidates on the test split; this dataset has none")
    recipe = TrainParams.model_validate(version.config.get("train_params") or {})
    recipe = recipe.model_copy(update={"device": device})
    weights = load_version_weights(ctx, version)
    data = UnlearnData(split.forget, split.retain, test=split.test, scope="sample_ids")
    sets = EvaluationSets.build(split.forget, split.retain, split.test, seed=seed)
    candidates: list[dict[str, Any]] = spec["candidates"]
    span = 0.9 / (len(candidates) + 1)
    ctx.log(
        f"tuning {job.method} on {len(split.forget)} pseudo-forget samples of "
        f"{len(split.trained.arrays)} trained: {len(candidates)} candidate(s) vs a retrain"
    )

    def scored(state_dict: dict[str, Any]) -> dict[str, Any]:
        out = evaluate_forgetting(
            NetworkPredictor(arch, state_dict), sets, relearn=False, probe=False, seed=seed
        )
        return {k: v for k, v in out.items() if isinstance(v, int | float)}

    original = scored(weights)
    reference_run = get_method("retrain").run(
        arch,
        weights,
        data,
        {"device": device},
        ContextCallbacks(ctx, progress_span=(0.02, 0.02 + span)),
        train_params=recipe,
    )
    reference = scored(reference_run.state_dict)
    ctx.log(f"retrain reference: {_numbers(reference)}")
    method = get_method(str(job.method))
    results: list[dict[str, Any]] = []
    for i, params in enumerate(candidates):
        low = 0.02 + span * (i + 1)
        callbacks = ContextCallbacks(ctx, progress_span=(low, low + span))
        entry: dict[str, Any] = {"params": params}
        try:
            run = method.run(
                arch,
                weights,
                data,
                {**params, "seed": seed, "device": device},
                callbacks,
                train_params=recipe,
            )
        except UnlearningDiverged as exc:
            entry.update(passed=False, error=str(exc))
            results.append(entry)
            ctx.log(f"candidate {params}: diverged ({exc})")
            continue
        evaluation = scored(run.state_dict)
        before = dict(original)
        if policy.shadow_models:
            # The strong test, as a deletion would run it: the version's shadow bank is
            # trained on the first candidate and reused for the others.
            block = {"evaluation": evaluation, "original_evaluation": before}
            add_lira(
                ctx,
                job,
                version,
                arch,
                recipe,
                split,
                NetworkPredictor(arch, run.state_dict),
                NetworkPredictor(arch, weights),
                block,
                policy.shadow_models,
            )
        verdict = verify(evaluation, before, "sample_ids", policy.thresholds, model.family)
        # Selection asks that no check fails; whether a check is informative (the
        # original failed it) depends on how much this network memorised the
        # pseudo-forget set, which no parameter changes: it is reported, not required.
        entry.update(
            passed=all(c["passed"] for c in verdict["checks"]),
            informative_checks=int(verdict.get("informative_checks", 0)),
            avg_gap=round(float(comparison(evaluation, reference)["avg_gap"]), 4),
            cost_fraction=round(float(run.metrics.get("estimated_cost_fraction", 0.0)), 4),
            evaluation=_numbers(evaluation),
            failed_checks=[c["check"] for c in verdict["checks"] if not c["passed"]],
        )
        if isinstance(evaluation.get("lira"), dict):
            lira = evaluation["lira"]
            entry["lira"] = {
                "tpr_at_1pct_fpr": round(float(lira["tpr_at_1pct_fpr"]), 4),
                "passed": bool(lira["passed"]),
            }
        elif "lira_error" in evaluation:
            entry["lira_error"] = str(evaluation["lira_error"])
        results.append(entry)
        ctx.log(
            f"candidate {params}: {'passes' if entry['passed'] else 'fails'}, "
            f"gap {entry['avg_gap']:.4f}, cost {entry['cost_fraction']:.2f} x retrain"
        )
    ranked = sorted(
        (r for r in results if "avg_gap" in r),
        key=lambda r: (not r["passed"], r["avg_gap"], r["cost_fraction"]),
    )
    winner = ranked[0] if ranked else None
    applied = bool(spec.get("apply", True)) and winner is not None and winner["passed"]
    summary: dict[str, Any] = {
        "method": job.method,
        "pseudo_forget_count": len(split.forget),
        "original": _numbers(original),
        "reference": _numbers(reference),
        "candidates": results,
        "winner": winner,
        "applied": applied,
    }
    ctx.check()
    # The policy changes in the transaction that finishes the job, and only while this
    # attempt still owns it (the fenced update raises otherwise, rolling both back).
    with ctx.factory() as session:
        model = session.get(Model, job.model_id, with_for_update=True)
        assert model is not None
        if applied and winner is not None:
            current = DeletionPolicy.for_family(model.family, model.deletion_policy)
            params = dict(winner["params"])
            if "device" in current.method_params and "device" not in params:
                params["device"] = current.method_params["device"]
            stored = dict(model.deletion_policy or {})
            stored.update(method=str(job.method), method_params=params)
            model.deletion_policy = DeletionPolicy.for_family(model.family, stored).model_dump(
                mode="json"
            )
        audit(
            session,
            job.created_by or "system",
            "deletion_policy.tuned",
            "model",
            model.id,
            {
                "job_id": job.id,
                "model_version_id": version.id,
                "method": job.method,
                "pseudo_forget_count": len(split.forget),
                "candidates": [
                    {k: r[k] for k in ("params", "passed", "avg_gap", "cost_fraction") if k in r}
                    for r in results
                ],
                "winner": winner["params"] if winner else None,
                "applied": applied,
            },
        )
        ctx._fenced(
            session,
            state="succeeded",
            progress=1.0,
            metrics=summary,
            finished_at=utcnow(),
            wall_seconds=ctx.wall_seconds,
            peak_memory_mb=round(ctx.peak_rss_mb, 1),
        )
        record_event(session, job.id, "state", {"state": "succeeded"})
        session.commit()
    ctx.log(
        f"winner {winner['params'] if winner else None}: "
        + ("stored on the model's deletion policy" if applied else "not applied")
    )
    return summary
