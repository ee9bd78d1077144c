"""The strong membership test as a step of the unlearn job: find or train the version's
shadow models (once per version; ``core/deletion/shadows.py`` says where they live), then
score the unlearned network and the original on the forget set (``workers/engine/lira``).
"""

from __future__ import annotations

from typing import Any

from contracts.classifier import ArchitectureConfig, TrainParams
from core.deletion.shadows import RECORD, find_shadows, shadow_key
from core.storage import ObjectNotFound
from models import Job, ModelVersion
from models.base import utcnow
from workers.context import JobCancelled, JobContext
from workers.engine.errors import EngineError, TrainingStopped
from workers.engine.lira import ShadowBank, score_predictor, train_shadows
from workers.jobs.common import ContextCallbacks, ForgetSplit

# Per-sample scores are kept in the job's metrics only up to this many forget samples.
MAX_SCORES = 200


def shadow_bank(
    ctx: JobContext,
    job: Job,
    version: ModelVersion,
    arch: ArchitectureConfig,
    recipe: TrainParams,
    split: ForgetSplit,
    k: int,
    progress_span: tuple[float, float],
) -> tuple[ShadowBank, dict[str, Any]]:
    """The bank of ``version`` (or of the ancestor it was unlearned from), trained and
    recorded here if there is none yet; with what it cost and whether it was reused."""
    with ctx.factory() as session:
        fresh = session.get(ModelVersion, version.id)
        assert fresh is not None
        found = find_shadows(session, fresh, k)
    if found is not None:
        try:
            # A purge may have just rewritten the bank under a new key: then train afresh.
            bank = ShadowBank.from_bytes(ctx.store.get_bytes(found["key"]))
        except ObjectNotFound:
            bank = None
        if bank is not None:
            ctx.log(f"strong test: reusing {found['k']} shadow models of {found['version_id']}")
            _count_use(ctx, found["version_id"])
            return bank, {
                "reused": True,
                "shadow_version_id": found["version_id"],
                "seconds": 0.0,
            }
    ctx.log(
        f"strong test: training {k} shadow models on random halves of "
        f"{len(split.trained.arrays)} samples (once for this version)"
    )
    try:
        bank = train_shadows(
            arch,
            recipe,
            split.trained.arrays,
            split.test,
            k,
            seed=int(recipe.seed),
            callbacks=ContextCallbacks(ctx, progress_span=progress_span),
        )
    except TrainingStopped:
        ctx.check()
        raise JobCancelled("stopped") from None
    key = shadow_key(version.id, k)
    ctx.store.put_bytes(key, bank.to_bytes())
    record = {
        "k": k,
        "key": key,
        "seconds": round(bank.seconds, 3),
        "samples": len(bank.sample_ids),
        "test_samples": len(bank.test_ids),
        "job_id": job.id,
        "created_at": utcnow().isoformat(),
        "uses": 1,
    }
    with ctx.factory() as session:
        row = session.get(ModelVersion, version.id)
        assert row is not None
        row.metrics = {**(row.metrics or {}), RECORD: record}
        session.commit()
    ctx.log(f"strong test: {k} shadow models trained in {bank.seconds:.1f}s and stored")
    return bank, {"reused": False, "shadow_version_id": version.id, "seconds": bank.seconds}


def _count_use(ctx: JobContext, version_id: str) -> None:
    """One more request served by the bank: the plan amortises its cost over these."""
    with ctx.factory() as session:
        row = session.get(ModelVersion, version_id)
        if row is None:
            return
        record = dict((row.metrics or {}).get(RECORD) or {})
        record["uses"] = int(record.get("uses", 0)) + 1
        row.metrics = {**(row.metrics or {}), RECORD: record}
        session.commit()


def add_lira(
    ctx: JobContext,
    job: Job,
    version: ModelVersion,
    arch: ArchitectureConfig,
    recipe: TrainParams,
    split: ForgetSplit,
    predictor: Any,
    original: Any,
    metrics: dict[str, Any],
    k: int,
) -> None:
    """Put ``lira`` blocks in ``metrics["evaluation"]`` and ``["original_evaluation"]``;
    where the test cannot run, ``lira_error`` says why (the other evidence stands)."""
    evaluation = metrics.get("evaluation")
    before = metrics.get("original_evaluation")
    if not isinstance(evaluation, dict) or not isinstance(before, dict):
        return
    if split.test is None or not len(split.forget):
        evaluation["lira_error"] = "the strong test needs forget samples and a test split"
        return
    try:
        bank, cost = shadow_bank(ctx, job, version, arch, recipe, split, k, (0.8, 0.95))
        seed = int(job.params.get("seed", 0))
        for target, block in ((predictor, evaluation), (original, before)):
            result = score_predictor(bank, target, split.forget, split.test, seed=seed)
            # Scores in the forget set's order, without its sample ids: the job's metrics
            # outlive the request, and ids in clear are the request's to hold, not ours.
            del result["score_ids"]
            if result["forget_count"] > MAX_SCORES:
                del result["scores"]
            block["lira"] = {**result, **cost}
            ctx.check()
    except EngineError as exc:
        ctx.log(f"strong test skipped: {exc}")
        evaluation["lira_error"] = str(exc)
        return
    lira = evaluation["lira"]
    ctx.metric("lira_tpr_at_1pct_fpr", lira["tpr_at_1pct_fpr"])
    ctx.metric("lira_auc", lira["auc"])
    ctx.log(
        f"strong test (K={k}): TPR at 1% FPR {lira['tpr_at_1pct_fpr']:.3f}, AUC "
        f"{lira['auc']:.3f}, {'passed' if lira['passed'] else 'flagged'}; the original: "
        f"AUC {before['lira']['auc']:.3f}, {'passed' if before['lira']['passed'] else 'flagged'}"
    )
