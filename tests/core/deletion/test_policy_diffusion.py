"""The diffusion verdict over a panel of judges and sampler settings: one check per
(judge, setting) cell against the original's same cell, and one failing cell fails it."""

from __future__ import annotations

from typing import Any

import pytest

from core.deletion.policy import NOT_CERTIFIED, NOT_DISTINGUISHABLE, Thresholds, verify
from core.deletion.render import summarise

JUDGES = ("digit-recognizer", "mlp@test split")
SAMPLERS = ("ddim 25 steps, seed 0", "ddim 50 steps, seed 1")


def _cells(values: dict[tuple[str, str], tuple[float, float]]) -> dict[str, Any]:
    """An evaluation whose cells hold (forget_rate, retain_accuracy) per (judge, sampler)."""
    cells = [
        {
            "judge": judge,
            "sampler": sampler,
            "forget_rate": forget,
            "forget_ci": [0.0, 0.2],
            "retain_accuracy": retain,
            "retain_ci": [retain - 0.05, min(1.0, retain + 0.05)],
        }
        for (judge, sampler), (forget, retain) in values.items()
    ]
    first = cells[0]
    return {
        "forget_rate": first["forget_rate"],
        "retain_accuracy": first["retain_accuracy"],
        "cells": cells,
        "judges": list(JUDGES),
        "samplers": [{"label": s} for s in SAMPLERS],
        "disagreement": {"between_judges": {"forget_rate": 0.0, "retain_accuracy": 0.1}},
    }


def _grid(forget: float, retain: float) -> dict[tuple[str, str], tuple[float, float]]:
    return {(j, s): (forget, retain) for j in JUDGES for s in SAMPLERS}


ORIGINAL = _cells({**_grid(0.95, 0.9), ("mlp@test split", "ddim 50 steps, seed 1"): (0.9, 0.8)})


def test_every_cell_passing_passes_with_one_check_pair_per_cell() -> None:
    result = verify(_cells(_grid(0.0, 0.89)), ORIGINAL, "labels", Thresholds(), "ddpm")
    assert result["passed"] and result["level"] == NOT_DISTINGUISHABLE
    assert len(result["checks"]) == 2 * len(JUDGES) * len(SAMPLERS)
    cells = {(c["judge"], c["sampler"]) for c in result["checks"]}
    assert cells == {(j, s) for j in JUDGES for s in SAMPLERS}
    assert result["judges"] == list(JUDGES) and result["samplers"] == list(SAMPLERS)
    assert result["disagreement"]["between_judges"]["retain_accuracy"] == 0.1


@pytest.mark.parametrize(
    ("cell", "values", "failing"),
    [
        # One judge at one setting still recognises the erased class.
        (("mlp@test split", "ddim 50 steps, seed 1"), (0.0625, 0.8), "forget_rate"),
        # One judge at one setting lost the other classes (against ITS original cell).
        (("digit-recognizer", "ddim 50 steps, seed 1"), (0.0, 0.86), "retain_accuracy"),
    ],
)
def test_one_failing_cell_fails_the_verdict(
    cell: tuple[str, str], values: tuple[float, float], failing: str
) -> None:
    evaluation = _cells({**_grid(0.0, 0.89), cell: values})
    result = verify(evaluation, ORIGINAL, "labels", Thresholds(), "ddpm")
    assert result["passed"] is False and result["level"] == NOT_CERTIFIED
    [failed] = [c for c in result["checks"] if not c["passed"]]
    assert (failed["judge"], failed["sampler"]) == cell
    assert failed["check"].startswith(failing)
    assert cell[0] in failed["attack"] and cell[1] in failed["attack"]


def test_each_cell_is_held_to_its_own_original_cell() -> None:
    # 0.79 retained is within 3 points of the MLP's 0.8 at 50 steps, but not of 0.9.
    values = {**_grid(0.0, 0.89), ("mlp@test split", "ddim 50 steps, seed 1"): (0.0, 0.79)}
    result = verify(_cells(values), ORIGINAL, "labels", Thresholds(), "ddpm")
    assert result["passed"], result.get("reason", result)
    mlp50 = next(
        c
        for c in result["checks"]
        if c["judge"] == "mlp@test split"
        and c["sampler"] == SAMPLERS[1]
        and c["check"].startswith("retain")
    )
    assert mlp50["threshold"] == pytest.approx(0.77) and mlp50["original_value"] == 0.8
    assert mlp50["ci"] == [pytest.approx(0.74), pytest.approx(0.84)]


def test_a_cell_the_original_lacks_uses_its_headline_figures() -> None:
    original = {"forget_rate": 0.9, "retain_accuracy": 0.95}
    result = verify(_cells(_grid(0.0, 0.9)), original, "labels", Thresholds(), "ddpm")
    assert result["passed"] is False
    assert all(
        c["threshold"] == pytest.approx(0.92) for c in result["checks"] if c["kind"] == "utility"
    )


def test_a_cell_whose_original_never_showed_the_class_is_not_informative() -> None:
    original = _cells(_grid(0.0, 0.9))
    result = verify(_cells(_grid(0.0, 0.9)), original, "labels", Thresholds(), "ddpm")
    assert all(c["passed"] for c in result["checks"])
    assert result["passed"] is False and result["informative_checks"] == 0


def test_the_certificate_names_each_cell_of_a_diffusion_verdict() -> None:
    result = verify(_cells(_grid(0.0, 0.89)), ORIGINAL, "labels", Thresholds(), "ddpm")
    summary = summarise({"models": [{"method": "esd", "checks": result["checks"]}]})
    [row] = summary.models
    assert len(row.checks) == 8
    assert row.checks[0].startswith("passed: forget_rate <= max_forget_rate = 0.0000")
    cell = "[judge digit-recognizer, ddim 25 steps, seed 0, 95 % CI 0.0000–0.2000]"
    assert cell in row.checks[0]
    assert sum("judge mlp@test split, ddim 50 steps, seed 1" in line for line in row.checks) == 2
