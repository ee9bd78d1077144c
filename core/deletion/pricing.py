"""What an approximate attempt is expected to cost against the exact path, for the plan.

An attempt costs its own run, and when verification fails, the retrain it was meant to
avoid on top. So with ``p_fail`` the chance that it fails, an attempt is worth making only
when ``attempt + p_fail x retrain < retrain``. The attempt's cost comes from the method's
own cost model (sample passes against the original recipe's,
``contracts.methods.ClassifierMethodSpec.budget``), ``p_fail`` from the verdicts of past
deletion items that ran the same method on this model, or on models of its family
trained on the same dataset while this one has too few: a Laplace estimate
(failures + 1) / (attempts + 2), so no history means 0.5.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.methods import MethodError, get_method_spec
from core.deletion.policy import DeletionPolicy
from core.lineage import resolve_forget
from models import DatasetVersion, Model, ModelVersion
from models.deletion import DeletionItem

# Below this many of its own verdicts a model borrows its family's.
MIN_OWN_VERDICTS = 3
# The most recent items read per history (a plan must stay quick on a long-lived model).
HISTORY_LIMIT = 500


@dataclass(frozen=True)
class Pricing:
    """One plan entry's cost reasoning, in multiples of a retrain's cost."""

    method: str
    estimate_fraction: float
    estimated_passes: float
    retrain_passes: float
    epochs: int | None
    budget_source: str
    p_fail: float
    verdicts: int
    failures: int
    history: str  # "model" or "family": whose verdicts p_fail rests on
    expected_fraction: float
    max_cost_fraction: float | None
    choice: str  # "attempt" or "exact"
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def attempts(item: DeletionItem) -> list[tuple[str, bool]]:
    """(method, passed) for each run an item's history records.

    A run starts with a ``started`` event; it failed when a ``fallback`` or ``failed``
    event follows, and passed when the item ended ``done`` with a passing verdict for it.
    """
    out: list[tuple[str, bool]] = []
    current: str | None = None
    for entry in item.history or []:
        event = entry.get("event")
        if event == "started":
            current = entry.get("method")
        elif event in ("fallback", "failed") and current:
            out.append((current, False))
            current = None
        elif event == "retried":
            current = None
    verdict = item.verdict or {}
    passed = item.state == "done" and verdict.get("passed")
    if current and passed and verdict.get("method", current) == current:
        out.append((current, True))
    return out


def _tally(items: list[DeletionItem], method: str) -> tuple[int, int]:
    runs = [passed for each in items for name, passed in attempts(each) if name == method]
    return len(runs), sum(1 for passed in runs if not passed)


def failure_history(
    session: Session, model: Model, version: ModelVersion, method: str
) -> tuple[int, int, str]:
    """(verdicts, failures, basis) of ``method`` on this model, else on its family.

    The family's pool is its models trained on the same dataset: whether a method's
    result passes depends on the data as much as on the method (a subject who is a whole
    class of the faces dataset fails a fine-tune every time, and says nothing about a
    random subject of another dataset).
    """
    own = list(
        session.scalars(
            select(DeletionItem)
            .join(ModelVersion, ModelVersion.id == DeletionItem.model_version_id)
            .where(ModelVersion.model_id == model.id, DeletionItem.attempt > 0)
            .order_by(DeletionItem.id.desc())
            .limit(HISTORY_LIMIT)
        )
    )
    n, failed = _tally(own, method)
    if n >= MIN_OWN_VERDICTS:
        return n, failed, "model"
    dsv = session.get(DatasetVersion, version.dataset_version_id)
    if dsv is None:
        return n, failed, "model"
    family = list(
        session.scalars(
            select(DeletionItem)
            .join(ModelVersion, ModelVersion.id == DeletionItem.model_version_id)
            .join(Model, Model.id == ModelVersion.model_id)
            .join(DatasetVersion, DatasetVersion.id == ModelVersion.dataset_version_id)
            .where(
                Model.family == model.family,
                DatasetVersion.dataset_id == dsv.dataset_id,
                DeletionItem.attempt > 0,
            )
            .order_by(DeletionItem.id.desc())
            .limit(HISTORY_LIMIT)
        )
    )
    n, failed = _tally(family, method)
    return n, failed, "family"


def counts(
    session: Session, version: ModelVersion, scope: dict[str, Any]
) -> tuple[int, int] | None:
    """(forget, retain) sample counts of a scope on a version; None without lineage."""
    if not version.dataset_version_id or version.training_mask is None:
        return None
    dsv = session.get(DatasetVersion, version.dataset_version_id)
    if dsv is None:
        return None
    resolution = resolve_forget(session, dsv.dataset_id, dsv.version, version.training_mask, scope)
    n_forget = len(resolution.forget_positions)
    return n_forget, resolution.trained_count - n_forget


def price(
    session: Session,
    model: Model,
    version: ModelVersion,
    policy: DeletionPolicy,
    method: str,
    params: dict[str, Any],
    scope: dict[str, Any],
) -> Pricing | None:
    """The attempt's price and the choice, or None where it cannot be priced (a method
    declared without a cost model, no recipe or lineage, an exact method)."""
    try:
        spec = get_method_spec(method, model.family)
    except MethodError:
        return None  # the API validated the policy; an older one may no longer validate
    # The declaration's cost model (classifier and causal_lm methods have one: passes
    # against the original's training), if the family's methods declare one.
    budget_of = getattr(spec, "budget", None)
    if budget_of is None or spec.exact:
        return None
    train_epochs = ((version.config or {}).get("train_params") or {}).get("epochs")
    sizes = counts(session, version, scope)
    if not train_epochs or sizes is None or sizes[1] <= 0:
        return None
    try:
        budget = budget_of(params, sizes[0], sizes[1], float(train_epochs))
    except MethodError:
        return None  # params an older policy holds may no longer validate
    fraction = budget.cost_fraction
    if fraction is None or budget.retrain_passes is None:
        return None
    n, failed, basis = failure_history(session, model, version, method)
    p_fail = (failed + 1) / (n + 2)
    expected = fraction + p_fail
    limit = policy.max_cost_fraction
    if limit is not None and fraction > limit:
        choice = "exact"
        reason = (
            f"{method} is estimated at {fraction:.2f} x a retrain, over the policy's "
            f"max_cost_fraction {limit:g}: straight to the exact path"
        )
    elif policy.price_failures and expected >= 1.0:
        choice = "exact"
        reason = (
            f"an attempt is expected to cost {fraction:.2f} + {p_fail:.2f} (p_fail, "
            f"{failed} of {n} past verdicts on this {basis}) = {expected:.2f} x a retrain, "
            "more than it saves: straight to the exact path"
        )
    else:
        choice = "attempt"
        reason = (
            f"attempt {fraction:.2f} + p_fail {p_fail:.2f} x retrain = {expected:.2f} x a "
            "retrain, under the retrain alone"
        )
    return Pricing(
        method=method,
        estimate_fraction=fraction,
        estimated_passes=budget.passes,
        retrain_passes=budget.retrain_passes,
        epochs=budget.epochs,
        budget_source=budget.source,
        p_fail=p_fail,
        verdicts=n,
        failures=failed,
        history=basis,
        expected_fraction=expected,
        max_cost_fraction=limit,
        choice=choice,
        reason=reason,
    )
