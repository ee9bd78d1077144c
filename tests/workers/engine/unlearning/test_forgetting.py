"""The shared forgetting evaluation: direction of every metric on a known case."""

from __future__ import annotations

import pytest

from workers.engine.forgetting import (
    EvaluationSets,
    NetworkPredictor,
    comparison,
    evaluate_forgetting,
)
from workers.engine.training import train_classifier


def test_original_vs_retrained_classwise(classwise_world) -> None:
    w = classwise_world
    d = w.data
    sets = EvaluationSets.build(d.forget, d.retain, d.test, forget_labels=[0])
    original = NetworkPredictor(w.arch, w.state_dict)
    retrained = NetworkPredictor(w.arch, train_classifier(w.arch, w.recipe, d.retain).state_dict)

    before = evaluate_forgetting(original, sets)
    after = evaluate_forgetting(retrained, sets, reference=original)
    # The original knows class 0, the retrained model never saw it.
    assert before["UA"] < 0.1 and after["UA"] > 0.9
    assert after["RA"] > 0.9 and after["TA"] > 0.8
    assert after["MIA"] > before["MIA"]
    assert 0.0 <= after["loss_auc"] <= 1.0 and after["js_forget"] > 0
    assert after["relearn_accuracy"] >= 0 and "probe_accuracy" in after
    assert after["forget_count"] == len(d.forget)

    gaps = comparison(before, after)
    assert gaps["avg_gap"] == pytest.approx(
        sum(abs(before[k] - after[k]) for k in ("UA", "RA", "TA", "MIA")) / 4
    )
    assert comparison(after, after)["avg_gap"] == 0.0
