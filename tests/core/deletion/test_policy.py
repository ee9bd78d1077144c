"""Deletion policy: family defaults, and verdicts that can fail.

Every check runs on the original too; a forgetting check the original already passes is
not informative, and a verdict needs an informative one."""

from __future__ import annotations

from typing import Any

import pytest

from core.deletion.policy import (
    EXACT,
    NOT_CERTIFIED,
    NOT_DISTINGUISHABLE,
    VERIFIED,
    DeletionPolicy,
    Thresholds,
    verify,
)


def test_a_ddpm_gets_diffusion_defaults_and_stored_fields_win() -> None:
    classifier = DeletionPolicy.for_family("classifier", None)
    assert classifier.class_method == "boundary_shrink" and classifier.method == "finetune"
    ddpm = DeletionPolicy.for_family("ddpm", {})
    assert ddpm.class_method == "esd" and ddpm.method == "retrain"
    assert ddpm.fallback == "retrain" and ddpm.thresholds.max_forget_rate == 0.02
    chosen = DeletionPolicy.for_family("ddpm", {"class_method": "salun", "judge": {"seed": 3}})
    assert chosen.class_method == "salun" and chosen.judge == {"seed": 3}
    # ESD's tuned params belong to ESD: another method starts from its own defaults.
    assert chosen.class_method_params == {} and ddpm.class_method_params["steps"] == 200


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
    assert first["original_passed"] is False and first["informative"]
    assert second["kind"] == "utility" and not second["informative"]
    assert result["level"] == (NOT_DISTINGUISHABLE if passed else NOT_CERTIFIED)


def test_a_class_erasure_is_certified_when_the_original_knew_the_class() -> None:
    evaluation = {"UA": 1.0, "TA": 0.9, "loss_auc": 0.5}
    result = verify(evaluation, {"UA": 0.02, "TA": 0.91}, "labels", Thresholds())
    assert result["passed"] and result["checks"][0]["check"].startswith("forget_accuracy")
    assert result["checks"][0]["original_value"] == pytest.approx(0.98)
    assert result["level"] == NOT_DISTINGUISHABLE and "the original" in result["evidence"]


# A well-generalising MNIST small_cnn (the tracker's numbers): the original's forget
# accuracy 99.17 % is within test accuracy 97.23 % + 5 points, and its loss attack is weak.
MNIST_ORIGINAL = {"UA": 0.0083, "TA": 0.9723, "RA": 0.99, "loss_auc": 0.56}


def test_a_generalising_original_makes_the_default_checks_not_informative() -> None:
    candidate = {"UA": 0.03, "TA": 0.97, "RA": 0.985, "loss_auc": 0.52}
    result = verify(candidate, MNIST_ORIGINAL, "subject_ids", Thresholds())
    assert all(c["passed"] for c in result["checks"])
    assert not any(c["informative"] for c in result["checks"])
    assert result["passed"] is False and result["level"] == NOT_CERTIFIED
    assert "no informative forgetting check" in result["reason"]


def test_a_memorising_original_makes_the_loss_attack_informative() -> None:
    original = {"UA": 0.0, "TA": 0.80, "loss_auc": 0.91}
    candidate = {"UA": 0.22, "TA": 0.79, "loss_auc": 0.55}
    result = verify(candidate, original, "sample_ids", Thresholds())
    informative = [c["check"] for c in result["checks"] if c["informative"]]
    assert informative == [
        "forget_accuracy <= test_accuracy + forget_margin",
        "loss_auc <= max_loss_auc",
    ]
    assert result["passed"] and result["level"] == NOT_DISTINGUISHABLE
    assert "loss-threshold membership attack" in result["evidence"]


def _orl(accuracy_on_person: float) -> dict[str, Any]:
    """One ORL person = one class; the subject's 7 training photos are all of label 7."""
    return {
        "UA": 1.0 - accuracy_on_person,
        "TA": 1.0,
        "loss_auc": 0.633,
        "forget_count_trained": 7,
        "label_coverage": {"7": {"trained": 7, "forget": 7, "share": 1.0}},
        "forget_label_accuracy": {"7": accuracy_on_person},
    }


def test_a_subject_that_is_a_whole_class_gets_the_class_check() -> None:
    """The tracker's case: forget accuracy 1.0 ≤ test accuracy 1.0 + 0.05 and AUC 0.633 ≤
    0.65 passed, while the model still recognised the person in 10 of 10 photos."""
    still_knows = verify(_orl(1.0), _orl(1.0), "subject_ids", Thresholds())
    assert not still_knows["passed"]
    [class_check] = [c for c in still_knows["checks"] if c["kind"] == "forgetting"]
    assert class_check["check"] == "forget_accuracy <= max_class_accuracy"
    assert class_check["labels"] == ["7"] and class_check["value"] == 1.0
    forgot = verify(_orl(0.0), _orl(1.0), "subject_ids", Thresholds())
    assert forgot["passed"] and forgot["level"] == NOT_DISTINGUISHABLE
    # Below the share, a person is not a class: the sample checks apply.
    partial = _orl(1.0) | {"label_coverage": {"7": {"trained": 7, "forget": 3, "share": 0.43}}}
    names = {c["check"] for c in verify(partial, partial, "subject_ids", Thresholds())["checks"]}
    assert "forget_accuracy <= max_class_accuracy" not in names


def test_the_strong_membership_test_is_the_strongest_evidence() -> None:
    original = MNIST_ORIGINAL | {"lira": {"tpr_at_1pct_fpr": 0.31, "passed": False}}
    lira = {"tpr_at_1pct_fpr": 0.012, "passed": True}
    candidate = {"UA": 0.03, "TA": 0.97, "loss_auc": 0.5, "lira": lira}
    result = verify(candidate, original, "subject_ids", Thresholds())
    assert result["passed"] and result["level"] == VERIFIED and "0.3100" in result["evidence"]
    failing = candidate | {"lira": {"tpr_at_1pct_fpr": 0.2, "passed": False}}
    assert not verify(failing, original, "subject_ids", Thresholds())["passed"]


def test_a_version_that_never_saw_the_data_is_exact_by_lineage() -> None:
    result = verify({"forget_count_trained": 0}, {}, "subject_ids", Thresholds())
    assert result["passed"] and result["level"] == EXACT and "never trained" in result["evidence"]


FLAGGED = {"lira": {"tpr_at_1pct_fpr": 0.3, "passed": False}}
UNFLAGGED = {"lira": {"tpr_at_1pct_fpr": 0.0, "passed": True}}
EVALUATIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("classifier", "labels", {"UA": 0.0, "TA": 0.9, "loss_auc": 0.9}),
    ("classifier", "labels", {"UA": 1.0, "TA": 0.9, "loss_auc": 0.1}),
    ("classifier", "subject_ids", MNIST_ORIGINAL),
    ("classifier", "sample_ids", {"UA": 0.0, "TA": 0.7, "loss_auc": 0.95}),
    ("classifier", "subject_ids", _orl(1.0)),
    ("classifier", "subject_ids", _orl(0.0)),
    ("classifier", "subject_ids", MNIST_ORIGINAL | FLAGGED),
    ("classifier", "subject_ids", MNIST_ORIGINAL | UNFLAGGED),
    ("ddpm", "labels", {"forget_rate": 0.9, "retain_accuracy": 0.95}),
    ("ddpm", "labels", {"forget_rate": 0.0, "retain_accuracy": 0.95}),
    ("text2image", "labels", {"forget_rate": 0.8, "retain_accuracy": 0.9}),
    ("text2image", "subject_ids", {"forget_rate": 0.01, "retain_accuracy": 0.9}),
]


@pytest.mark.parametrize(("family", "kind", "evaluation"), EVALUATIONS)
def test_the_untouched_original_is_never_certified(
    family: str, kind: str, evaluation: dict[str, Any]
) -> None:
    """Whatever its numbers, a model compared with itself proves no forgetting: a check
    it fails, the candidate fails; a check it passes is not informative."""
    result = verify(evaluation, evaluation, kind, Thresholds(), family=family)
    assert result["passed"] is False and result["level"] == NOT_CERTIFIED, result


def test_an_unmeasured_original_figure_makes_no_check_informative() -> None:
    original = {"UA": 0.0, "TA": 0.8, "loss_auc": float("nan")}
    candidate = {"UA": 0.3, "TA": 0.8, "loss_auc": 0.5}
    [_, auc, _] = verify(candidate, original, "subject_ids", Thresholds())["checks"]
    assert auc["original_value"] is None and auc["original_passed"] is None
    assert not auc["informative"]
