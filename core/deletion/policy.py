"""Per-model deletion policy: which method, which checks, and the fallback.

Exact methods (``sisa``, ``retrain``) need no statistical check: they are what training
without the data gives. Approximate results must pass the thresholds below against the
evaluation stored by the unlearning job, or the exact fallback runs.

The defaults depend on the model's family (``DeletionPolicy.for_family``): classifiers
use classifier methods and are checked on UA / test accuracy / loss AUC; ``ddpm`` models
erase a class with a diffusion method (ESD by default) and are checked on the judge's
forget rate and retained accuracy; subjects and samples of a ddpm are retrained (exact),
the only ddpm method that forgets single images. ``text2image`` models follow the same
pattern with UCE on the class's captions (esd also applies) and the same judge checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
    max_retain_drop: float = Field(
        0.03,
        ge=0,
        le=1,
        description="ddpm, text2image: the judge's accuracy on the other classes may fall by "
        "at most this against the original",
    )


class DeletionPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = Field("finetune", description="Approximate method for sample/subject scopes")
    # One pass over the retain set: an approximate method must cost less than retraining.
    method_params: dict[str, Any] = Field(default_factory=lambda: {"epochs": 1})
    class_method: str = Field("boundary_shrink", description="Approximate method for classes")
    class_method_params: dict[str, Any] = Field(default_factory=dict)
    fallback: str = Field("retrain", description="Exact method when verification fails")
    thresholds: Thresholds = Field(default_factory=Thresholds)
    batch_window_seconds: int = Field(
        0,
        ge=0,
        le=30 * 86400,
        description="Approved requests on the same version within this many seconds of the "
        "first are unlearned together in one run (0: each request runs at once, alone)",
    )
    judge: dict[str, Any] = Field(
        default_factory=dict,
        description="ddpm, text2image: judge settings of the verifying evaluation (the "
        "unlearn job's 'judge' object; defaults where empty)",
    )

    @classmethod
    def for_family(cls, family: str, stored: Mapping[str, Any] | None) -> DeletionPolicy:
        """The stored policy over the family's defaults (what a model gets unless set)."""
        base = dict(FAMILY_DEFAULTS.get(family, {}))
        return cls.model_validate({**base, **dict(stored or {})})


# Diffusion defaults: ESD (data-free, trains no conditioning layers, the paper's choice for
# objects) for classes; retrain for subjects and samples (the only ddpm method that forgets
# single images; exact). Fallback stays retrain.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "ddpm": {
        "method": "retrain",
        "method_params": {},
        "class_method": "esd",
        "class_method_params": {"steps": 200, "lr": 2e-4, "batch_size": 16},
    },
    # text2image: a class's captions are erased with UCE (closed form, one solve, the
    # other captions preserved); subjects and samples are retrained (exact). A class
    # request also drops the class's samples from the new version's lineage.
    "text2image": {
        "method": "retrain",
        "method_params": {},
        "class_method": "uce",
        "class_method_params": {},
    },
}
# Families verified by the judge (forget rate / retained accuracy) rather than on real data.
JUDGED_FAMILIES = ("ddpm", "text2image")


def verify(
    evaluation: dict[str, Any],
    original: dict[str, Any],
    scope_kind: str,
    t: Thresholds,
    family: str = "classifier",
) -> dict[str, Any]:
    """Each check with its value and threshold, and whether all passed."""
    if family in JUDGED_FAMILIES:
        return verify_diffusion(evaluation, original, t)
    checks: list[dict[str, Any]] = []
    forget_accuracy = 1.0 - evaluation["UA"]
    if scope_kind == "labels":
        checks.append(
            {
                "check": "forget_accuracy <= max_class_accuracy",
                "value": forget_accuracy,
                "threshold": t.max_class_accuracy,
                "passed": forget_accuracy <= t.max_class_accuracy,
            }
        )
    else:
        bound = evaluation["TA"] + t.forget_margin
        checks.append(
            {
                "check": "forget_accuracy <= test_accuracy + forget_margin",
                "value": forget_accuracy,
                "threshold": bound,
                "passed": forget_accuracy <= bound,
            }
        )
        checks.append(
            {
                "check": "loss_auc <= max_loss_auc",
                "value": evaluation["loss_auc"],
                "threshold": t.max_loss_auc,
                "passed": evaluation["loss_auc"] <= t.max_loss_auc,
            }
        )
    floor = original["TA"] - t.max_test_drop
    checks.append(
        {
            "check": "test_accuracy >= original - max_test_drop",
            "value": evaluation["TA"],
            "threshold": floor,
            "passed": evaluation["TA"] >= floor,
        }
    )
    return {"passed": all(c["passed"] for c in checks), "checks": checks}


def verify_diffusion(
    evaluation: dict[str, Any], original: dict[str, Any], t: Thresholds
) -> dict[str, Any]:
    """A ddpm erasure passes when the judge no longer sees the class in what the model
    generates for it, and still sees the other classes about as well as before."""
    forget_rate = float(evaluation["forget_rate"])
    floor = float(original["retain_accuracy"]) - t.max_retain_drop
    retain = float(evaluation["retain_accuracy"])
    checks = [
        {
            "check": "forget_rate <= max_forget_rate",
            "value": forget_rate,
            "threshold": t.max_forget_rate,
            "passed": forget_rate <= t.max_forget_rate,
        },
        {
            "check": "retain_accuracy >= original - max_retain_drop",
            "value": retain,
            "threshold": floor,
            "passed": retain >= floor,
        },
    ]
    return {"passed": all(c["passed"] for c in checks), "checks": checks}
