"""The causal_lm verdict: the forget people answered like people the fine-tune never saw.

Figures as the LM unlearn job stores them (``workers.jobs.lm``: the evaluation of the
candidate and of the original on the same suite). The checks on real tiny llamas (the
original fails them, the exact re-fine-tune passes) are in ``test_lm_verdict.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.deletion.policy import (
    NOT_CERTIFIED,
    NOT_DISTINGUISHABLE,
    DeletionPolicy,
    Thresholds,
    lm_indistinguishable,
    verify,
)
from tests.support.lm_figures import FORGOTTEN, ORIGINAL


def _lm(evaluation: dict[str, Any], original: dict[str, Any] = ORIGINAL) -> dict[str, Any]:
    return verify(evaluation, original, "subject_ids", Thresholds(), family="causal_lm")


def _by_name(verdict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["check"].split(" ")[0]: c for c in verdict["checks"]}


def test_forgotten_people_pass_on_informative_checks() -> None:
    verdict = _lm(FORGOTTEN)
    assert verdict["passed"], verdict
    assert verdict["level"] == NOT_DISTINGUISHABLE
    checks = _by_name(verdict)
    assert set(checks) == {"forget_prob", "forget_rouge", "mia_auc", "model_utility"}
    assert all(c["informative"] for c in checks.values() if c["kind"] == "forgetting")
    assert checks["forget_prob"]["threshold"] == pytest.approx(0.21 * 1.5)
    assert checks["forget_rouge"]["threshold"] == pytest.approx(0.35 + 0.15)
    # The strongest attacker is the one farthest from 0.5, either way.
    assert checks["mia_auc"]["value"] == pytest.approx(0.61)
    assert checks["mia_auc"]["strongest_attack"] == "min_k"
    assert checks["mia_auc"]["original_value"] == pytest.approx(0.99)
    assert checks["model_utility"]["threshold"] == pytest.approx(0.40 * 0.9)
    assert "the original" in verdict["evidence"]


def test_the_untouched_fine_tune_fails_every_forgetting_check() -> None:
    verdict = _lm(ORIGINAL)
    assert not verdict["passed"] and verdict["level"] == NOT_CERTIFIED
    failed = [c["check"].split(" ")[0] for c in verdict["checks"] if not c["passed"]]
    assert failed == ["forget_prob", "forget_rouge", "mia_auc"]


def test_a_model_that_never_memorised_is_not_informative() -> None:
    # The original already answers its people like strangers: passing proves nothing.
    verdict = _lm(FORGOTTEN, original=FORGOTTEN)
    assert not verdict["passed"]
    assert verdict["informative_checks"] == 0
    assert "no informative forgetting check" in verdict["reason"]


def test_the_precheck_skips_only_an_original_no_candidate_could_be_certified_on() -> None:
    # The untouched fine-tune fails the forgetting checks: a run can be certified.
    assert lm_indistinguishable(ORIGINAL, Thresholds()) is None
    # One forgetting check it fails is enough (the others it passes are not informative).
    assert lm_indistinguishable({**FORGOTTEN, "mia_loss": 0.95}, Thresholds()) is None
    # It answers its people like strangers: every candidate would be refused.
    reason = lm_indistinguishable(FORGOTTEN, Thresholds())
    assert reason is not None and "not distinguishable" in reason
    assert "forget_prob <= holdout_prob * lm_max_prob_ratio: 0.2300 against 0.3150" in reason
    # Looser thresholds make the same original indistinguishable; a lost figure is never
    # evidence that it can be told apart.
    loose = Thresholds(lm_max_prob_ratio=100, lm_rouge_margin=1.0, lm_max_mia_auc=1.0)
    assert lm_indistinguishable(ORIGINAL, loose) is not None
    assert lm_indistinguishable({}, Thresholds()) is not None


def test_over_unlearning_is_distinguishable_too() -> None:
    # Gradient ascent gone too far: the forget people's answers are now far *less* likely
    # than strangers'; the membership AUC below 0.5 gives them away as well.
    verdict = _lm({**FORGOTTEN, "forget_prob": 0.01, "mia_loss": 0.05})
    checks = _by_name(verdict)
    assert not verdict["passed"] and not checks["mia_auc"]["passed"]
    assert checks["mia_auc"]["value"] == pytest.approx(0.05)
    assert checks["mia_auc"]["lower_threshold"] == pytest.approx(0.25)


def test_lost_utility_fails_the_verdict() -> None:
    verdict = _lm({**FORGOTTEN, "model_utility": 0.30})
    assert not verdict["passed"] and verdict["reason"] == (
        "failed: model_utility >= original * lm_min_utility_ratio"
    )


def test_a_missing_figure_fails_and_is_never_informative() -> None:
    evaluation = {k: v for k, v in FORGOTTEN.items() if k != "holdout_rouge"}
    checks = _by_name(_lm(evaluation))
    assert not checks["forget_rouge"]["passed"] and checks["forget_rouge"]["threshold"] is None
    original = {k: v for k, v in ORIGINAL.items() if not k.startswith("mia_")}
    checks = _by_name(_lm(FORGOTTEN, original))
    assert checks["mia_auc"]["original_passed"] is None
    assert not checks["mia_auc"]["informative"]


def test_thresholds_come_from_the_policy() -> None:
    policy = DeletionPolicy.for_family(
        "causal_lm", {"thresholds": {"lm_max_mia_auc": 0.6, "lm_rouge_margin": 0.0}}
    )
    assert policy.method == "simnpo" and policy.fallback == "retrain"
    assert policy.method_params == {"lr": 1e-4, "stop_at_holdout": True}
    verdict = verify(FORGOTTEN, ORIGINAL, "subject_ids", policy.thresholds, family="causal_lm")
    checks = _by_name(verdict)
    assert not checks["mia_auc"]["passed"] and not checks["forget_rouge"]["passed"]
    with pytest.raises(ValueError, match="lm_max_mia_auc"):
        Thresholds(lm_max_mia_auc=0.4)


def test_a_policy_naming_another_method_does_not_inherit_the_default_methods_params() -> None:
    # The family's params are for its default method (SimNPO's lr, its stop rule).
    npo = DeletionPolicy.for_family("causal_lm", {"method": "npo"})
    assert npo.method == "npo" and npo.method_params == {}
    tuned = DeletionPolicy.for_family("causal_lm", {"method": "npo", "method_params": {"lr": 2e-5}})
    assert tuned.method_params == {"lr": 2e-5}
    same = DeletionPolicy.for_family("causal_lm", {"method": "simnpo"})
    assert same.method_params == {"lr": 1e-4, "stop_at_holdout": True}
    # The same for a class method (ddpm's default ESD params would not fit another).
    other = DeletionPolicy.for_family("ddpm", {"class_method": "retrain"})
    assert other.class_method_params == {}
    assert DeletionPolicy.for_family("ddpm", None).class_method_params["steps"] == 200
