"""Per-model deletion policy: which method, which checks, and the fallback.

Exact methods (``sisa``, ``retrain``) need no statistical check: they are what training
without the data gives. Approximate results must pass the thresholds below against the
evaluation stored by the unlearning job, or the exact fallback runs.

The defaults depend on the model's family (``DeletionPolicy.for_family`` reads the
``policy_defaults`` of its declaration in ``contracts``): classifiers use classifier
methods and are checked on UA / test accuracy / loss AUC; ``ddpm`` models
erase a class with a diffusion method (ESD by default) and are checked on the judge's
forget rate and retained accuracy; subjects and samples of a ddpm are retrained (exact),
the only ddpm method that forgets single images. ``text2image`` models follow the same
pattern with UCE on the class's captions (esd also applies) and the same judge checks.

Every check runs on the version being replaced too (``original_passed``): a forgetting
check the original already passes cannot tell forgetting from never having memorised, so
it is *not informative*, and an approximate verdict needs at least one informative
forgetting check, all checks passing. Each verdict states its level of evidence
(``exact``, ``verified_against_reference``, ``not_distinguishable``) in a sentence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts import get_family


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    forget_margin: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Samples/subjects: forget accuracy may exceed test accuracy by at most this "
        "(a model that never saw them does about as well on them as on unseen data)",
    )
    max_class_accuracy: float = Field(
        0.01, ge=0, le=1, description="Classes: accuracy left on the forgotten class (UA ≥ 99 %)"
    )
    max_test_drop: float = Field(
        0.05, ge=0, le=1, description="Test accuracy may fall by at most this against the original"
    )
    max_loss_auc: float = Field(
        0.65,
        ge=0.5,
        le=1,
        description="Loss-threshold attack ROC AUC, forget vs test (0.5 = cannot tell them apart)",
    )
    max_forget_rate: float = Field(
        0.02,
        ge=0,
        le=1,
        description="ddpm, text2image: share of images generated for an erased class that "
        "the judge still recognises as it",
    )
    whole_class_share: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Samples/subjects: when the forget set holds at least this share of a "
        "label's training samples, that label is a class being forgotten and the class check "
        "(max_class_accuracy) applies to it",
    )
    max_retain_drop: float = Field(
        0.03,
        ge=0,
        le=1,
        description="ddpm, text2image: the judge's accuracy on the other classes may fall by "
        "at most this against the original",
    )
    lm_max_prob_ratio: float = Field(
        1.5,
        ge=1,
        le=100,
        description="causal_lm: the forget people's answer probability may be at most this "
        "multiple of the held-out people's (people the fine-tune never saw)",
    )
    lm_rouge_margin: float = Field(
        0.15,
        ge=0,
        le=1,
        description="causal_lm: the ROUGE-L recall of the model's answers to the forget "
        "people's questions may exceed the held-out people's by at most this",
    )
    lm_max_mia_auc: float = Field(
        0.75,
        gt=0.5,
        le=1,
        description="causal_lm: every membership attack (LOSS, zlib, Min-K %, Min-K %++) "
        "must tell the forget people from the held-out people with an AUC within "
        "[1 - this, this]; below is over-unlearning, which an attacker notices too",
    )
    lm_min_utility_ratio: float = Field(
        0.9,
        ge=0,
        le=1,
        description="causal_lm: model utility (TOFU: retain and world-fact answers) must stay "
        "at least this share of the original's",
    )
    lm_eval_items: int = Field(
        40,
        ge=10,
        le=1000,
        description="causal_lm: the verdict's evaluation scores at most this many retain, "
        "held-out and world-fact questions each (evenly spaced: the same ones every run); "
        "the forget people's questions are always all scored. Fewer is faster, more is a "
        "finer comparison",
    )


class DeletionPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = Field("finetune", description="Approximate method for sample/subject scopes")
    # Empty: the method's epochs come from its budget_fraction of the original's own
    # training (resolved at run time), so the default stays well under a retrain's cost.
    method_params: dict[str, Any] = Field(default_factory=dict)
    class_method: str = Field("boundary_shrink", description="Approximate method for classes")
    class_method_params: dict[str, Any] = Field(default_factory=dict)
    fallback: str = Field("retrain", description="Exact method when verification fails")
    max_cost_fraction: float | None = Field(
        0.5,
        gt=0,
        le=10,
        description="Plan straight to the exact fallback when the approximate method is "
        "estimated to cost more than this share of a retrain (its sample passes against "
        "the original recipe's on what remains); empty: never refuse on cost",
    )
    price_failures: bool = Field(
        True,
        description="Plan straight to the exact fallback when an attempt is expected to cost "
        "more than it saves: attempt + p_fail x retrain > retrain, with p_fail from this "
        "model's (or, with few, its family's) past verdicts for the method",
    )
    thresholds: Thresholds = Field(default_factory=Thresholds)
    batch_window_seconds: int = Field(
        0,
        ge=0,
        le=30 * 86400,
        description="Approved requests on the same version within this many seconds of the "
        "first are unlearned together in one run (0: each request runs at once, alone)",
    )
    shadow_models: int = Field(
        0,
        ge=0,
        le=64,
        description="Classifiers, samples/subjects: shadow models for the strong membership "
        "test (LiRA) on an approximate result; 0 = off, 2 at least, 8 typical. Trained once "
        "per version (on random halves of its training set; the plan shows the one-off "
        "cost) and reused by every later request on it and on the versions unlearned from it",
    )

    @field_validator("shadow_models")
    @classmethod
    def _two_shadows_or_none(cls, value: int) -> int:
        if value == 1:
            raise ValueError(
                "shadow_models must be 0 (off) or at least 2: each sample is IN for half of "
                "the shadows and OUT for the other half"
            )
        return value

    judge: dict[str, Any] = Field(
        default_factory=dict,
        description="ddpm, text2image: judge settings of the verifying evaluation (the "
        "unlearn job's 'judge' object; defaults where empty)",
    )

    @classmethod
    def for_family(cls, family: str, stored: Mapping[str, Any] | None) -> DeletionPolicy:
        """The stored policy over the family's defaults (what a model gets unless set);
        the defaults are the family's declaration's (``contracts``). A stored policy that
        names another method without its params gets that method's own defaults, not the
        params the family chose for its default method."""
        base = dict(get_family(family).policy_defaults)
        stored = dict(stored or {})
        merged = {**base, **stored}
        for key in ("method", "class_method"):
            other = key in stored and stored[key] != base.get(key)
            if other and f"{key}_params" not in stored:
                merged[f"{key}_params"] = {}
        return cls.model_validate(merged)


# Evidence levels, strongest first after exact, as a certificate states them.
EXACT = "exact"
VERIFIED = "verified_against_reference"
NOT_DISTINGUISHABLE = "not_distinguishable"
NOT_CERTIFIED = "not_certified"

EXACT_SENTENCES = {
    "retrain": "retrained without the data; the new version never saw it",
    "sisa": "the shards that held the data were retrained without it (SISA); the new version "
    "never saw it",
    "retire": "retired: the version was withdrawn and its checkpoint purged; nothing derived "
    "from it remains in use",
    "none": "an earlier request's run had already removed all of the data from this version",
    "lineage": "by its recorded lineage this version was never trained on the data; there was "
    "nothing to forget and nothing to verify",
}


def exact_evidence(method: str) -> dict[str, str]:
    """The level and sentence of an exact item (no statistical check needed)."""
    sentence = EXACT_SENTENCES.get(method, f"{method} is exact: {EXACT_SENTENCES['retrain']}")
    return {"level": EXACT, "evidence": sentence}


def check(
    name: str,
    kind: str,
    attack: str,
    value: float | None,
    threshold: float | None,
    passed: bool,
    original_value: float | None,
    original_threshold: float | None,
    original_passed: bool | None,
    **extra: Any,
) -> dict[str, Any]:
    """One check record, the same shape for every family.

    ``kind`` is ``forgetting`` (evidence that the data left the model) or ``utility`` (the
    model still works); a forgetting check is *informative* only if the original, run
    through the same check, failed it: only then does passing it say anything about the
    unlearning step. ``original_passed`` is None when the original's figure is missing,
    which also makes the check not informative; ``value`` is None when the candidate's
    figure was not measured (the check then fails: it cannot be shown to hold).
    """
    return {
        "check": name,
        "kind": kind,
        "attack": attack,
        "value": value,
        "threshold": threshold,
        "passed": bool(passed),
        "original_value": original_value,
        "original_threshold": original_threshold,
        "original_passed": None if original_passed is None else bool(original_passed),
        "informative": kind == "forgetting" and original_passed is False,
        **extra,
    }


def decide(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """The verdict over check records: every check passes and at least one informative
    forgetting check exists; with the level of evidence and the sentence that says it."""
    informative = [c for c in checks if c["informative"]]
    failed = [c for c in checks if not c["passed"]]
    passed = not failed and bool(informative)
    if failed:
        reason = "failed: " + "; ".join(c["check"] for c in failed)
    elif not informative:
        reason = (
            "no informative forgetting check: the original version already passes every "
            "forgetting check, so passing them says nothing about the unlearning step"
        )
    else:
        reason = None
    verdict: dict[str, Any] = {
        "passed": passed,
        "checks": checks,
        "informative_checks": len(informative),
    }
    if reason:
        verdict["reason"] = reason
    verdict.update(approximate_evidence(checks) if passed else _not_certified(reason))
    return verdict


def _not_certified(reason: str | None) -> dict[str, str]:
    return {"level": NOT_CERTIFIED, "evidence": f"not certified ({reason})"}


def approximate_evidence(checks: list[dict[str, Any]]) -> dict[str, str]:
    """Level and sentence of a passed approximate verdict, from its informative checks."""
    informative = [c for c in checks if c["informative"]]
    lira = [c for c in informative if c.get("reference")]
    if lira:
        c = lira[0]
        return {
            "level": VERIFIED,
            "evidence": "verified against reference models: the per-sample membership test "
            f"({c['attack']}) no longer flags the forgotten samples (TPR at 1 % FPR "
            f"{_num(c['value'])}), while it flagged the original ({_num(c['original_value'])})",
        }
    parts = [
        f"{c['attack']} ({_num(c['value'])}, bound {_num(c['threshold'])}; the original "
        f"{_num(c['original_value'])})"
        for c in informative
    ]
    return {
        "level": NOT_DISTINGUISHABLE,
        "evidence": "not distinguishable by " + "; ".join(parts) + " — and the original was "
        "distinguishable by "
        + ("it" if len(parts) == 1 else "each of them")
        + ". This is approximate unlearning: the data's influence is not provably gone",
    }


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "n/a"


def _get(evaluation: dict[str, Any] | None, key: str) -> float | None:
    """A figure, or None when missing or NaN (a figure that was not measured never makes
    a check informative)."""
    value = (evaluation or {}).get(key)
    if not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _whole_classes(evaluation: dict[str, Any], t: Thresholds) -> tuple[list[str], int, int]:
    """Labels whose training samples the forget set covers (≥ whole_class_share), the
    forget samples in them, and the forget samples in all."""
    coverage: dict[str, dict[str, Any]] = evaluation.get("label_coverage") or {}
    covered = [
        label for label, c in coverage.items() if float(c.get("share", 0)) >= t.whole_class_share
    ]
    in_covered = sum(int(coverage[label].get("forget", 0)) for label in covered)
    total = sum(int(c.get("forget", 0)) for c in coverage.values())
    return covered, in_covered, total


def _class_accuracy(evaluation: dict[str, Any] | None, labels: list[str]) -> float | None:
    """Accuracy on the forget samples of ``labels`` (weighted by their forget counts)."""
    per_label = (evaluation or {}).get("forget_label_accuracy") or {}
    coverage = (evaluation or {}).get("label_coverage") or {}
    if not labels or any(label not in per_label for label in labels):
        return None
    weights = [int(coverage.get(label, {}).get("forget", 1)) for label in labels]
    total = sum(weights) or 1
    pairs = zip(labels, weights, strict=True)
    return sum(float(per_label[label]) * w for label, w in pairs) / total


def verify(
    evaluation: dict[str, Any],
    original: dict[str, Any],
    scope_kind: str,
    t: Thresholds,
    family: str = "classifier",
) -> dict[str, Any]:
    """Each check on the candidate and on the original, and the verdict (``decide``).

    A subject or samples scope that covers a whole label (``whole_class_share`` of its
    training samples; the worker reports ``label_coverage``) is a class being forgotten:
    the class check applies to it, since "no better than on unseen data" says nothing
    when the model has no unseen data of that person.
    """
    if get_family(family).judged:
        return verify_diffusion(evaluation, original, t)
    if family == LM_FAMILY:
        return verify_lm(evaluation, original, t)
    if evaluation.get("forget_count_trained") == 0:
        return {
            "passed": True,
            "checks": [],
            "informative_checks": 0,
            "reason": "nothing to verify: the version was never trained on the data",
            **exact_evidence("lineage"),
        }
    checks: list[dict[str, Any]] = []
    covered, in_covered, total = (
        _whole_classes(evaluation, t) if scope_kind != "labels" else ([], 0, 0)
    )
    if scope_kind == "labels":
        value, before = 1.0 - evaluation["UA"], _complement(original.get("UA"))
        checks.append(_class_check(value, before, t, "the forgotten class"))
    elif covered:
        value = _class_accuracy(evaluation, covered)
        before = _class_accuracy(original, covered)
        if value is not None:
            checks.append(
                _class_check(
                    value,
                    before,
                    t,
                    f"the forgotten class{'es' if len(covered) > 1 else ''} "
                    f"(label{'s' if len(covered) > 1 else ''} {', '.join(covered)}: the scope "
                    "holds all of their training samples)",
                    labels=covered,
                )
            )
    if scope_kind != "labels" and (not covered or in_covered < total or not checks):
        bound = evaluation["TA"] + t.forget_margin
        forget_accuracy = 1.0 - evaluation["UA"]
        o_ua, o_ta = _get(original, "UA"), _get(original, "TA")
        o_bound = None if o_ta is None else o_ta + t.forget_margin
        o_value = None if o_ua is None else 1.0 - o_ua
        checks.append(
            check(
                "forget_accuracy <= test_accuracy + forget_margin",
                "forgetting",
                "accuracy on the forget set against unseen test data",
                forget_accuracy,
                bound,
                forget_accuracy <= bound,
                o_value,
                o_bound,
                None if o_value is None or o_bound is None else o_value <= o_bound,
            )
        )
        o_auc = _get(original, "loss_auc")
        checks.append(
            check(
                "loss_auc <= max_loss_auc",
                "forgetting",
                "the loss-threshold membership attack (ROC AUC, forget vs test)",
                evaluation["loss_auc"],
                t.max_loss_auc,
                evaluation["loss_auc"] <= t.max_loss_auc,
                o_auc,
                t.max_loss_auc,
                None if o_auc is None else o_auc <= t.max_loss_auc,
            )
        )
    if lira := _lira_check(evaluation, original):
        checks.append(lira)
    floor = original["TA"] - t.max_test_drop
    checks.append(
        check(
            "test_accuracy >= original - max_test_drop",
            "utility",
            "test accuracy kept",
            evaluation["TA"],
            floor,
            evaluation["TA"] >= floor,
            original["TA"],
            floor,
            True,
        )
    )
    return decide(checks)


def _complement(value: Any) -> float | None:
    return 1.0 - float(value) if isinstance(value, int | float) else None


def _class_check(
    value: float, before: float | None, t: Thresholds, what: str, **extra: Any
) -> dict[str, Any]:
    return check(
        "forget_accuracy <= max_class_accuracy",
        "forgetting",
        f"accuracy on {what}",
        value,
        t.max_class_accuracy,
        value <= t.max_class_accuracy,
        before,
        t.max_class_accuracy,
        None if before is None else before <= t.max_class_accuracy,
        **extra,
    )


def _lira_check(evaluation: dict[str, Any], original: dict[str, Any]) -> dict[str, Any] | None:
    """The strong per-sample membership test, when the unlearn job ran it (shadow models):
    ``evaluation["lira"]`` and ``original["lira"]`` with ``tpr_at_1pct_fpr`` and ``passed``."""
    lira = evaluation.get("lira")
    if not isinstance(lira, dict) or "passed" not in lira:
        return None
    before = original.get("lira") if isinstance(original.get("lira"), dict) else {}
    return check(
        "lira_membership_test",
        "forgetting",
        "LiRA, a per-sample likelihood-ratio membership test against shadow models",
        _get(lira, "tpr_at_1pct_fpr") or 0.0,
        _get(lira, "threshold"),
        bool(lira["passed"]),
        _get(before, "tpr_at_1pct_fpr"),
        _get(before, "threshold"),
        before.get("passed") if "passed" in before else None,
        reference=True,
    )


# The family whose versions are checked by ``verify_lm`` (declared in contracts.causal_lm).
LM_FAMILY = "causal_lm"
# The membership attacks the LM evaluation reports, as ``mia_<name>`` AUCs.
LM_ATTACKS = {
    "loss": "LOSS",
    "zlib": "zlib ratio",
    "min_k": "Min-K %",
    "min_k_pp": "Min-K %++",
}


def _lm_mia(evaluation: dict[str, Any] | None) -> tuple[float | None, str | None]:
    """The membership AUC farthest from 0.5 over the attacks, and its attack: the
    strongest attacker's view (an AUC far below 0.5 tells members apart as well)."""
    found = [
        (auc, name) for name in LM_ATTACKS if (auc := _get(evaluation, f"mia_{name}")) is not None
    ]
    if not found:
        return None, None
    return max(found, key=lambda pair: abs(pair[0] - 0.5))


def _lm_bound(
    evaluation: dict[str, Any] | None, key: str, scale: float, add: float
) -> float | None:
    base = _get(evaluation, key)
    return None if base is None else base * scale + add


def verify_lm(
    evaluation: dict[str, Any], original: dict[str, Any], t: Thresholds
) -> dict[str, Any]:
    """A causal LM forgot its forget people when it answers them like the held-out people
    it never saw (the evaluation's ``holdout_*`` figures, same questions' kinds): answer
    probability no more than ``lm_max_prob_ratio`` times theirs, ROUGE-L recall of its
    greedy answers no more than ``lm_rouge_margin`` above theirs, and no membership
    attack separating the two groups (every AUC within [1 - lm_max_mia_auc,
    lm_max_mia_auc]); while model utility stays at ``lm_min_utility_ratio`` of the
    original's. The untouched fine-tune runs through the same checks: it fails them
    where it memorised the people, which is what makes a pass informative.

    A figure the run did not produce fails its check on the candidate (it cannot be
    shown to hold) and leaves it not informative on the original.
    """
    checks: list[dict[str, Any]] = []

    def bounded(name: str, attack: str, key: str, bound_key: str, scale: float, add: float) -> None:
        value, bound = _get(evaluation, key), _lm_bound(evaluation, bound_key, scale, add)
        o_value, o_bound = _get(original, key), _lm_bound(original, bound_key, scale, add)
        checks.append(
            check(
                name,
                "forgetting",
                attack,
                value,  # None: not measured (the check then fails)
                bound,
                value is not None and bound is not None and value <= bound,
                o_value,
                o_bound,
                None if o_value is None or o_bound is None else o_value <= o_bound,
            )
        )

    bounded(
        "forget_prob <= holdout_prob * lm_max_prob_ratio",
        "answer probability on the forget people's questions against people never trained on",
        "forget_prob",
        "holdout_prob",
        t.lm_max_prob_ratio,
        0.0,
    )
    bounded(
        "forget_rouge <= holdout_rouge + lm_rouge_margin",
        "ROUGE-L recall of the model's answers to the forget people's questions against "
        "people never trained on",
        "forget_rouge",
        "holdout_rouge",
        1.0,
        t.lm_rouge_margin,
    )
    low, high = 1.0 - t.lm_max_mia_auc, t.lm_max_mia_auc
    auc, attack = _lm_mia(evaluation)
    o_auc, o_attack = _lm_mia(original)
    checks.append(
        check(
            "mia_auc within [1 - lm_max_mia_auc, lm_max_mia_auc]",
            "forgetting",
            f"the {LM_ATTACKS.get(attack or '', 'strongest')} membership attack (ROC AUC, "
            "forget people vs held-out people; the strongest of LOSS, zlib, Min-K %, "
            "Min-K %++)",
            auc,
            high,
            auc is not None and low <= auc <= high,
            o_auc,
            high,
            None if o_auc is None else low <= o_auc <= high,
            lower_threshold=low,
            strongest_attack=attack,
            original_strongest_attack=o_attack,
        )
    )
    utility, o_utility = _get(evaluation, "model_utility"), _get(original, "model_utility")
    floor = None if o_utility is None else o_utility * t.lm_min_utility_ratio
    checks.append(
        check(
            "model_utility >= original * lm_min_utility_ratio",
            "utility",
            "model utility kept (TOFU: retain people's and world facts' answers)",
            utility,
            floor,
            utility is not None and floor is not None and utility >= floor,
            o_utility,
            floor,
            True,
        )
    )
    verdict = decide(checks)
    if (quality := _get(evaluation, "forget_quality")) is not None:
        # Reported, not decided on: it needs the exact re-fine-tune's truth ratios, which a
        # deletion run only has when the reference ran first.
        verdict["forget_quality"] = quality
    return verdict


def lm_indistinguishable(original: dict[str, Any], t: Thresholds) -> str | None:
    """Why no approximate result on this causal LM version could be certified, from the
    untouched version's own evaluation, or None when it can be.

    ``verify_lm`` needs at least one forgetting check that the original fails; a version
    that already answers the forget people like strangers (its fine-tune did not memorise
    them) passes them all, so any candidate's verdict is refused as not informative. The
    deletion run asks this before running the method, and goes to the exact path at once.
    """
    verdict = verify_lm(original, original, t)
    forgetting = [c for c in verdict["checks"] if c["kind"] == "forgetting"]
    if any(c["original_passed"] is False for c in forgetting):
        return None
    figures = "; ".join(
        f"{c['check']}: {_num(c['original_value'])} against {_num(c['original_threshold'])}"
        for c in forgetting
    )
    return (
        "the untouched version is not distinguishable: it already passes every forgetting "
        f"check ({figures}), so no approximate result could be certified; the method was "
        "not run"
    )


def verify_diffusion(
    evaluation: dict[str, Any], original: dict[str, Any], t: Thresholds
) -> dict[str, Any]:
    """A ddpm erasure passes when no judge sees the class in what the model generates
    for it at any sampler setting, and every judge still sees the other classes about as
    well as before; the original runs through the same checks (it must have shown the
    class, or the forget check is not informative).

    An evaluation with ``cells`` (one per judge × sampler setting, ``evaluate_panel``)
    gets a forget and a retain check per cell, each against the original's same cell
    (its headline figures where it lacks that cell), so one judge or one setting that
    still sees the class fails the verdict; the judges' ``disagreement`` is reported
    with it. An older evaluation without cells is checked on its one judge's numbers.
    """
    cells = evaluation.get("cells") or [
        {"forget_rate": evaluation["forget_rate"], "retain_accuracy": evaluation["retain_accuracy"]}
    ]
    before = {_cell_key(c): c for c in original.get("cells") or []}
    checks: list[dict[str, Any]] = []
    for cell in cells:
        reference = before.get(_cell_key(cell), original)
        where = {k: cell[k] for k in ("judge", "sampler") if k in cell}
        by = f"judge {cell['judge']} at {cell['sampler']}" if where else "the judge"
        forget_rate = float(cell["forget_rate"])
        o_rate = _get(reference, "forget_rate")
        checks.append(
            check(
                "forget_rate <= max_forget_rate",
                "forgetting",
                f"{by} on images generated for the erased class (share it still recognises)",
                forget_rate,
                t.max_forget_rate,
                forget_rate <= t.max_forget_rate,
                o_rate,
                t.max_forget_rate,
                None if o_rate is None else o_rate <= t.max_forget_rate,
                **where,
                **({"ci": cell["forget_ci"]} if "forget_ci" in cell else {}),
            )
        )
        baseline = float(reference["retain_accuracy"])
        floor = baseline - t.max_retain_drop
        retain = float(cell["retain_accuracy"])
        checks.append(
            check(
                "retain_accuracy >= original - max_retain_drop",
                "utility",
                f"{by}: accuracy on the other classes kept",
                retain,
                floor,
                retain >= floor,
                baseline,
                floor,
                True,
                **where,
                **({"ci": cell["retain_ci"]} if "retain_ci" in cell else {}),
            )
        )
    verdict = decide(checks)
    if "disagreement" in evaluation:
        verdict["disagreement"] = evaluation["disagreement"]
        verdict["judges"] = list(evaluation.get("judges") or [])
        verdict["samplers"] = [s.get("label") for s in evaluation.get("samplers") or []]
    return verdict


def _cell_key(cell: Mapping[str, Any]) -> tuple[Any, Any]:
    """Which judge at which sampler setting a cell is (matches a cell to the original's)."""
    return cell.get("judge"), cell.get("sampler")
