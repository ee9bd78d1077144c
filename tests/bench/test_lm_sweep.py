"""bench.lm_sweep with ``--tiny``: the deletion bench's fine-tune rebuilt in process and one
method at two settings, each judged by the deletion verdict against the untouched
fine-tune (which must fail a forgetting check, or no pass would mean anything)."""

from __future__ import annotations

import pytest
import torch

from bench import lm_sweep

pytestmark = pytest.mark.timeout(600)

CHECKS = {"forget_prob", "forget_rouge", "mia_auc", "model_utility"}


def test_a_sweep_judges_each_setting_like_the_deletion_verdict() -> None:
    torch.set_num_threads(1)
    original, idle, strong = lm_sweep.main(
        [
            "--tiny",
            "--method",
            "grad_diff",
            '{"method": "npo", "lr": 1e-9, "epochs": 1}',
            '{"method": "npo", "lr": 3e-3, "epochs": 5}',
        ]
    )
    for line in (original, idle, strong):
        assert set(line["checks"]) == CHECKS and line["passed"] is False
    # The fine-tune memorised the person: a membership attack tells them from strangers.
    failed = {k for k, c in original["checks"].items() if not c["passed"]}
    assert "mia_auc" in failed and original["checks"]["mia_auc"]["value"] > 0.75
    # A step too small to move anything fails where the original fails.
    assert {k for k, c in idle["checks"].items() if not c["passed"]} == failed
    # A large one pushes the person's answers far down: so far that the attack sees it
    # the other way (over-unlearning), which the verdict refuses too.
    prob = "forget_prob"
    assert strong["checks"][prob]["value"] < idle["checks"][prob]["value"]
    assert strong["checks"]["mia_auc"]["value"] < 0.25 and not strong["checks"]["mia_auc"]["passed"]
    assert strong["params"] == {"lr": 3e-3, "epochs": 5} and strong["method"] == "npo"
