"""Deletion policy: family defaults, and the ddpm verdict on the judge's numbers."""

from __future__ import annotations

import pytest

from core.deletion.policy import DeletionPolicy, Thresholds, verify


def test_a_ddpm_gets_diffusion_defaults_and_stored_fields_win() -> None:
    classifier = DeletionPolicy.for_family("classifier", None)
    assert classifier.class_method == "boundary_shrink" and classifier.method == "finetune"
    ddpm = DeletionPolicy.for_family("ddpm", {})
    assert ddpm.class_method == "esd" and ddpm.method == "retrain"
    assert ddpm.fallback == "retrain" and ddpm.thresholds.max_forget_rate == 0.02
    chosen = DeletionPolicy.for_family("ddpm", {"class_method": "salun", "judge": {"seed": 3}})
    assert chosen.class_method == "salun" and chosen.judge == {"seed": 3}
    assert chosen.class_method_params == ddpm.class_method_params


@pytest.mark.parametrize(
    ("forget_rate", "retain", "passed"),
    [(0.0, 0.97, True), (0.02, 0.95, True), (0.05, 0.99, False), (0.0, 0.94, False)],
)
def test_the_ddpm_verdict_reads_forget_rate_and_retained_accuracy(
    forget_rate: float, retain: float, passed: bool
) -> None:
    original = {"forget_rate": 1.0, "retain_accuracy": 0.98}
    evaluation = {"forget_rate": forget_rate, "retain_accuracy": retain}
    result = verify(evaluation, original, "labels", Thresholds(), family="ddpm")
    assert result["passed"] is passed
    first, second = result["checks"]
    assert first["threshold"] == 0.02 and second["threshold"] == pytest.approx(0.95)


def test_classifiers_keep_their_checks() -> None:
    evaluation = {"UA": 1.0, "TA": 0.9, "loss_auc": 0.5}
    result = verify(evaluation, {"TA": 0.91}, "labels", Thresholds())
    assert result["passed"] and result["checks"][0]["check"].startswith("forget_accuracy")
